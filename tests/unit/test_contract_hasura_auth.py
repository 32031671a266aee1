"""drkit's canary sign-in (the auth probe) against hasura-auth's answers to
`POST /signin/email-password`, recorded from its source (nhost/hasura-auth, the Go server of
0.2x-0.3x): a session, an MFA ticket with `session: null`, the 401 refusals, and 429."""

from __future__ import annotations

import pytest

from drkit.adapters.probes import ProbeFailed, canary_sign_in
from tests.unit.contract_replay import Recorded, Replay

ERRORS_GO = "nhost/hasura-auth go/controller/errors.go"
SIGNIN_GO = "nhost/hasura-auth go/controller/post_signin_email_password.go"
PATH = "/signin/email-password"
URL = f"http://auth:4000{PATH}"

SESSION = Recorded(
    200,
    {
        "session": {
            "accessToken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig",
            "accessTokenExpiresIn": 900,
            "refreshToken": "1d8a4d6c-8f0e-4a4c-9d36-0e8d8b1f5c21",
            "refreshTokenId": "4f2d5e1a-7b1c-4d8e-9a3f-2c6b8e0d1f47",
            "user": {"id": "2c1b0a9e-6d5f-4e3d-8c2b-1a0f9e8d7c6b", "email": "drkit-canary@example.com"},
        },
        "mfa": None,
    },
    SIGNIN_GO,
)
# a user with active TOTP: the password was checked, a ticket `mfaTotp:<uuid>` is issued
MFA_TICKET = Recorded(
    200, {"mfa": {"ticket": "mfaTotp:8f2e6c1a-3b4d-4e5f-9a0b-1c2d3e4f5a6b"}, "session": None}, SIGNIN_GO
)
INVALID = Recorded(
    401,
    {"status": 401, "error": "invalid-email-password", "message": "Incorrect email or password"},
    ERRORS_GO,
)
UNVERIFIED = Recorded(
    401, {"status": 401, "error": "unverified-user", "message": "User is not verified."}, ERRORS_GO
)
DISABLED = Recorded(401, {"status": 401, "error": "disabled-user", "message": "User is disabled"}, ERRORS_GO)
# the rate limiter aborts with the status only (go/middleware/ratelimit/rate_limit.go,
# ctx.AbortWithStatus(http.StatusTooManyRequests) on /signin after the brute-force burst)
RATE_LIMITED = Recorded(429, None, "nhost/hasura-auth go/middleware/ratelimit/rate_limit.go")


def sign_in(answer: Recorded) -> tuple[str, Replay]:
    replay = Replay({("POST", PATH): [answer]})
    return canary_sign_in(URL, "drkit-canary@example.com", "pw", 5.0, transport=replay.transport()), replay


def test_a_session_is_healthy() -> None:
    verdict, replay = sign_in(SESSION)
    assert verdict == "canary signed in: HTTP 200 with a session"
    assert list(replay.bodies()) == [{"email": "drkit-canary@example.com", "password": "pw"}]


def test_an_mfa_ticket_with_a_null_session_is_healthy() -> None:
    verdict, _ = sign_in(MFA_TICKET)
    assert "MFA ticket (session: null)" in verdict


@pytest.mark.parametrize(
    ("answer", "fix"),
    [
        (INVALID, "HTTP 401 invalid-email-password: the canary account does not exist"),
        (UNVERIFIED, "AUTH_EMAIL_SIGNIN_EMAIL_VERIFIED_REQUIRED=false"),
        (DISABLED, "the canary account is disabled"),
        (RATE_LIMITED, "HTTP 429: hasura-auth's rate limit"),
    ],
)
def test_refusals_name_the_fix(answer: Recorded, fix: str) -> None:
    with pytest.raises(ProbeFailed, match=fix.replace("(", r"\(").replace(")", r"\)")):
        sign_in(answer)


def test_a_200_without_session_or_ticket_is_not_healthy() -> None:
    with pytest.raises(ProbeFailed, match="without a session or an MFA ticket"):
        sign_in(Recorded(200, {"session": None, "mfa": None}, "a broken proxy, not hasura-auth"))
