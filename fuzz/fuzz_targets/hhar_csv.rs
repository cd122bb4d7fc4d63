#![no_main]
//! `codats::fuzzing::hhar_csv`: never panics; an error is one line.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = codats::fuzzing::check("hhar_csv", data);
});
