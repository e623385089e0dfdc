-- The durable outbox: every outbound message is a row with a unique idempotency key, claimed by
-- workers with a lease, sent, and marked. States: pending → sending → sent, or task_created →
-- delivered for customer mass sends, or dead (with the reason; can be re-queued).

create table outbox (
    id bigserial primary key,
    idem_key text not null unique,
    channel_id text not null,
    -- app_message, appchat, robot, welcome, mp_custom, mass_template
    kind text not null,
    -- What the per-recipient rate limit is keyed by (user id, chat id, robot key id…).
    recipient text not null,
    -- The request body as JSON, without credentials.
    payload text not null,
    -- Higher first (welcome messages have a 20-second window).
    priority bigint not null default 0,
    state text not null default 'pending',
    attempts bigint not null default 0,
    next_attempt_at bigint not null,
    claimed_by text,
    claim_until bigint,
    -- After this time the message is useless (e.g. a welcome code) and goes dead unsent.
    expires_at bigint,
    last_error text,
    -- Platform id of the sent message or created task (msgid).
    platform_id text,
    -- Who confirms a mass-send task, and what came back from get_groupmsg_send_result.
    task_sender text,
    result text,
    created_at bigint not null,
    sent_at bigint,
    updated_at bigint not null
);
create index outbox_due on outbox (state, next_attempt_at);

-- Access tokens shared by every worker and replica: one gettoken per app per token lifetime.
create table api_tokens (
    app_key text primary key,
    token text not null,
    expires_at bigint not null,
    fetched_at bigint not null
);

-- Customer mass sends used per recipient and month (the admin-set monthly quota).
create table mass_send_quota (
    scope text not null,
    recipient text not null,
    month text not null,
    used bigint not null,
    primary key (scope, recipient, month)
);
