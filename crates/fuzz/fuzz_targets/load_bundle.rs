//! libFuzzer target: [`fastburn_fuzz::load_bundle`] (its docs say what it checks; see
//! [`fastburn_fuzz::libfuzzer`] for the modes).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: fastburn_fuzz::libfuzzer::init(),
    |data: &[u8]| fastburn_fuzz::libfuzzer::run(fastburn_fuzz::Target::LoadBundle, data)
);
