//! Fuzz target `block`: see `ringdb::fuzzing::block` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringdb::fuzzing::block(data));
