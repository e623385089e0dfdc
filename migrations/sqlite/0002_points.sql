-- Sign-in points: accounts (balance = sum of the ledger), the append-only ledger, daily sign-ins.

create table points_accounts (
    member_id bigint primary key references members (id),
    balance bigint not null default 0 check (balance >= 0),
    total_earned bigint not null default 0,
    streak integer not null default 0,
    best_streak integer not null default 0,
    last_signin_day integer,
    updated_at bigint not null
);

create table points_ledger (
    id integer primary key,
    member_id bigint not null references members (id),
    delta bigint not null,
    reason text not null,
    -- Each source (a sign-in, an ops command, an order) changes the balance at most once.
    source_key text not null unique,
    operator text,
    day integer not null,
    created_at bigint not null
);
create index points_ledger_member_day on points_ledger (member_id, day);
create index points_ledger_day on points_ledger (day);

create table signins (
    member_id bigint not null references members (id),
    day integer not null,
    scope text not null,
    group_id text,
    points bigint not null,
    streak integer not null,
    rank integer not null,
    created_at bigint not null,
    primary key (member_id, day)
) without rowid;
create index signins_scope_day on signins (scope, day);
