//! Fuzz target `table`: see `ringdb::fuzzing::table` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringdb::fuzzing::table(data));
