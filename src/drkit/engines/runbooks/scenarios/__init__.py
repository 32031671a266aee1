"""The recovery scenarios of the source procedures, corrected (see FIELD-NOTES)."""
