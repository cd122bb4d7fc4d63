#![no_main]
//! `codats::fuzzing::ucihar_zip`: never panics; an error is one line.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = codats::fuzzing::check("ucihar_zip", data);
});
