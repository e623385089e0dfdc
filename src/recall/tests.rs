use super::*;

fn plan(holdout: u32) -> Plan {
    let mut c: RecallPlanConfig = toml::from_str(
        r#"
        id = "p"
        name = "n"
        cron = "0 0 10 * * *"
        channel = "demo_robot"
        segment = "stage:lapsed"
        holdout_percent = 0
        recall_window_days = 7
        cooldown_days = 5
        max_touches = 2
        send_hours = [9, 21]
        touches = [{ after_days = 7, template = "{{ name }} {{ days_away }}" }]
        "#,
    )
    .expect("plan");
    c.holdout_percent = holdout;
    Plan::compile(&c).expect("compiles")
}

#[test]
fn the_holdout_is_deterministic_and_near_its_share() {
    let p = plan(20);
    let held = (0..10_000).filter(|m| p.holds_out(*m)).count();
    assert!((1_800..2_200).contains(&held), "{held}");
    assert_eq!(p.holds_out(42), plan(20).holds_out(42));
    assert_eq!((0..1000).filter(|m| plan(0).holds_out(*m)).count(), 0);
}

#[test]
fn bad_plans_are_refused_with_the_reason() {
    let mut c = plan(0).config;
    c.touches.push(c.touches[0].clone());
    assert!(Plan::compile(&c)
        .err()
        .unwrap_or_default()
        .contains("increasing"));
    let mut c = plan(0).config;
    c.segment = "stage:".into();
    assert!(Plan::compile(&c)
        .err()
        .unwrap_or_default()
        .contains("segment"));
    let mut c = plan(0).config;
    c.touches[0].template = "{% if %}".into();
    assert!(Plan::compile(&c)
        .err()
        .unwrap_or_default()
        .contains("template"));
}
