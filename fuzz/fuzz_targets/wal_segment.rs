//! Fuzz target `wal_segment`: see `ringdb::fuzzing::wal_segment` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringdb::fuzzing::wal_segment(data));
