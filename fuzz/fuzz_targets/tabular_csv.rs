#![no_main]
//! `codats::fuzzing::tabular_csv`: never panics; an error is one line.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = codats::fuzzing::check("tabular_csv", data);
});
