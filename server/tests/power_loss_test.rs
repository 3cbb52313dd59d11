//! Durability proven by simulated power loss (see docs/durability.md).

mod power_loss;

use power_loss::harness::{run_lives, Plan};
use power_loss::log_workload::{LogKind, LogWorkload};

#[test]
fn given_log_table_appends_when_power_is_lost_at_random_points_should_keep_every_acked_batch_once() {
    let plan = Plan::new("log", 0x5EED_0001, 6500, 10);
    let tally = run_lives(plan, |rng| {
        let compression = if rand::Rng::gen_bool(rng, 0.5) { "ZSTD" } else { "NONE" };
        LogWorkload::new(LogKind::Bucketed { compression }, 2, 6)
    });
    assert!(tally.get("power_losses") >= plan.lives);
}

#[test]
fn given_primary_key_tables_when_power_is_lost_at_random_points_should_keep_acked_state_and_count_nothing_twice() {
    let plan = Plan::new("pk", 0x5EED_0002, 1600, 15);
    let tally = run_lives(plan, |rng| power_loss::pk_workload::PkWorkload::new(rng, 4));
    assert!(tally.get("power_losses") >= plan.lives);
}

#[test]
fn given_writes_that_create_partitions_when_power_is_lost_at_random_points_should_keep_acked_partitions_and_rows() {
    let plan = Plan::new("partitioned", 0x5EED_0003, 2000, 10);
    let tally = run_lives(plan, |_| LogWorkload::new(LogKind::Partitioned, 2, 5));
    assert!(tally.get("power_losses") >= plan.lives);
}
