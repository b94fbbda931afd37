//! SLIP-39 mnemonics as typed or read from a backup file: any text is
//! parsed into a share (word lookup, "did you mean" search, checksum and
//! single-wrong-word search, header and padding checks); a share that
//! parses must survive encoding and parsing again unchanged. Combining is
//! left out: its PBKDF2 cost is set by the input (up to 2^15 × 10,000
//! iterations) and would only time out.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vault::slip39::share::Share;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(share) = Share::from_mnemonic(text) {
        let again = Share::from_mnemonic(&share.to_mnemonic()).expect("re-encoded share parses");
        assert_eq!(again, share);
    }
});
