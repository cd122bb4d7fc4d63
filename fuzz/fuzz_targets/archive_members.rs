#![no_main]
//! `codats::fuzzing::archive_members`: never panics; an error is one line.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = codats::fuzzing::check("archive_members", data);
});
