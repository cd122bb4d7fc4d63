#![no_main]
//! `codats::fuzzing::hapt_signal`: never panics; an error is one line.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = codats::fuzzing::check("hapt_signal", data);
});
