//! libFuzzer target: one input is the text of a case file, run through the pure pipeline
//! (`src/pipeline.rs`), with a JSON-aware mutator beside libFuzzer's own (`src/mutate.rs`).
//! Built and run by `scripts/fuzz`.

#![no_main]

#[path = "../src/mutate.rs"]
mod mutate;
#[path = "../src/pipeline.rs"]
mod pipeline;

libfuzzer_sys::fuzz_target!(|data: &[u8]| pipeline::pipeline(data));

libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate::mutate(data, size, max_size, seed, libfuzzer_sys::fuzzer_mutate)
});
