//! Fuzz target `batch`: see `ringdb::fuzzing::batch` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringdb::fuzzing::batch(data));
