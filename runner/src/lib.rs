//! bpfcase: a conformance test runner for eBPF helpers.
//!
//! Layers, data flowing one way: [`case`] (JSON → typed instances) → [`compile`] (instance →
//! `ProgramSpec`, pure) → [`exec`] (runs a spec on the live kernel through [`bpf`]) →
//! [`report`] (observations → snapshot text, summaries, verdicts).

pub mod bpf;
pub mod case;
pub mod compile;
pub mod exec;
pub mod pipeline;
pub mod progs;
pub mod report;
pub mod results;
pub mod tables;
pub mod vm;
