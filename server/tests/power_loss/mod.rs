//! The power-loss test kit: the rig (`harness`), models of what the engine promises, and the
//! workloads that drive the engine through thousands of simulated power losses.

pub mod harness;
pub mod log_model;
pub mod log_workload;
pub mod pk_model;
pub mod pk_workload;
