//! Fuzz target `manifest`: see `ringdb::fuzzing::manifest` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringdb::fuzzing::manifest(data));
