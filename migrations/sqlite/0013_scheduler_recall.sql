-- Scheduler ticks (inserting the row claims the tick, once across replicas) and recall touches:
-- one row per (plan, touch, member, cycle), for touched and held-out members alike.

create table schedule_ticks (
    schedule text not null,
    scheduled_for bigint not null,
    claimed_by text not null,
    claimed_at bigint not null,
    finished_at bigint,
    -- claimed, done, failed or skipped
    outcome text not null,
    primary key (schedule, scheduled_for)
);

create table recall_touches (
    id integer primary key autoincrement,
    plan text not null,
    member_id bigint not null references members (id),
    -- The member's inactivity period, identified by its last activity before the touch.
    cycle bigint not null,
    touch integer not null,
    held_out boolean not null,
    touched_at bigint not null,
    -- Local day of the touch (the start of the recall window).
    touch_day integer not null,
    -- Last local day of the recall window (days are yyyymmdd).
    window_end_day integer not null,
    bonus_points bigint not null default 0,
    bonus_end_day integer,
    bonus_credited boolean not null default false,
    unique (plan, member_id, cycle, touch)
);
create index recall_touches_plan on recall_touches (plan, touch);
create index recall_touches_member on recall_touches (member_id, touched_at);

-- Churn risk: days since last activity divided by the member's usual gap between active days.
create table member_risk (
    member_id bigint primary key references members (id),
    risk double precision not null,
    usual_gap_days double precision not null,
    computed_at bigint not null
);
create index member_risk_risk on member_risk (risk);
