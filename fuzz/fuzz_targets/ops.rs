//! Fuzz target `ops`: see `ringdb::fuzzing::ops` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringdb::fuzzing::ops(data);
});
