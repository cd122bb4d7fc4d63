#![no_main]
//! `codats::fuzzing::uwave_gesture`: never panics; an error is one line.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = codats::fuzzing::check("uwave_gesture", data);
});
