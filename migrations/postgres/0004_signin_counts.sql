-- Today's sign-in rank (第 N 位) from a counter per (scope, day) instead of counting the day's
-- sign-ins on every new one, which grows with the community.
create table signin_counts (
    scope text not null,
    day integer not null,
    signins bigint not null,
    primary key (scope, day)
);
insert into signin_counts (scope, day, signins)
    select scope, day, count(*) from signins group by scope, day;
