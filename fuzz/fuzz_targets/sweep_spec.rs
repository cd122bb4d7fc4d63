#![no_main]
//! `codats::fuzzing::sweep_spec`: never panics; an error is one line.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = codats::fuzzing::check("sweep_spec", data);
});
