-- Lifecycle stages (new, active, silent, lapsed, churned, returned): the current stage of each
-- member and every change, with its time (recall and the dashboard read them).

create table member_stages (
    member_id bigint primary key references members (id),
    stage text not null,
    since bigint not null
) without rowid;
create index member_stages_stage on member_stages (stage);

create table member_stage_history (
    id integer primary key,
    member_id bigint not null,
    from_stage text,
    to_stage text not null,
    at bigint not null
);
create index member_stage_history_member on member_stage_history (member_id, at);
