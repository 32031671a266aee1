-- An nchat-like schema, as nself's nchat has it (FIELD-NOTES): hasura-auth's users and
-- refresh tokens in schema auth; the app's tables copy users (no foreign key to auth.users);
-- nchat_messages.user_id is nullable with ON DELETE SET NULL (a NULL is a system message).
-- pgcrypto as nself creates it, amcheck for `drkit check` and verify --deep: each only where the
-- server ships it (PostgreSQL builds from wheels may lack contrib; gen_random_uuid() is core).
do $$
declare
    wanted text;
begin
    foreach wanted in array array['pgcrypto', 'amcheck'] loop
        if exists (select 1 from pg_available_extensions where name = wanted) then
            execute format('create extension if not exists %I', wanted);
        end if;
    end loop;
end
$$;
create schema if not exists auth;

create table auth.users (
    id uuid primary key default gen_random_uuid(),
    email text not null unique,
    display_name text not null,
    password_hash text not null,
    disabled boolean not null default false,
    created_at timestamptz not null default now()
);

create table auth.refresh_tokens (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references auth.users (id) on delete cascade,
    expires_at timestamptz not null,
    created_at timestamptz not null default now()
);
create index refresh_tokens_user_id_idx on auth.refresh_tokens (user_id);

create table nchat_users (
    id uuid primary key,
    email text not null,
    display_name text not null,
    avatar_url text,
    status text not null default 'offline',
    created_at timestamptz not null default now()
);

create table nchat_channels (
    id uuid primary key default gen_random_uuid(),
    name text not null unique,
    topic text,
    is_private boolean not null default false,
    created_by uuid references nchat_users (id) on delete set null,
    created_at timestamptz not null default now()
);
create index nchat_channels_created_by_idx on nchat_channels (created_by);

create table nchat_messages (
    id bigserial primary key,
    channel_id uuid not null references nchat_channels (id) on delete cascade,
    user_id uuid references nchat_users (id) on delete set null,
    content text not null,
    edited boolean not null default false,
    created_at timestamptz not null default now()
);
create index nchat_messages_channel_created_idx on nchat_messages (channel_id, created_at);
create index nchat_messages_user_id_idx on nchat_messages (user_id);

create table nchat_attachments (
    id uuid primary key default gen_random_uuid(),
    message_id bigint not null references nchat_messages (id) on delete cascade,
    bucket text not null,
    object_key text not null,
    sha256 text not null,
    size_bytes bigint not null,
    content_type text not null,
    created_at timestamptz not null default now()
);
create index nchat_attachments_message_id_idx on nchat_attachments (message_id);
