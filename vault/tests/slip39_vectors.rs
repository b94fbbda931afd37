//! The official SLIP-39 test vectors (vectors.json of the reference
//! implementation, see vectors/slip39/README.md): every valid vector
//! restores its master secret with the passphrase "TREZOR", every invalid
//! one is refused, with the error its description names.

use vault::slip39::share::MnemonicError;
use vault::slip39::{combine, Input, Slip39Error};

const VECTORS: &str = include_str!("vectors/slip39/vectors.json");

/// The error each invalid vector must give, by its description.
fn expected(description: &str, e: &Slip39Error) -> bool {
    use MnemonicError as M;
    use Slip39Error as E;
    let d = description;
    let share = |f: &dyn Fn(&M) -> bool| matches!(e, E::Share { problem, .. } if f(problem));
    let mismatch = |w: &str| matches!(e, E::Mismatch { what, .. } if what.starts_with(w));
    if d.contains("invalid checksum") {
        share(&|m| matches!(m, M::Checksum { .. }))
    } else if d.contains("invalid padding") {
        share(&|m| matches!(m, M::Padding))
    } else if d.contains("insufficient length") {
        share(&|m| matches!(m, M::TooShort(_)))
    } else if d.contains("invalid master secret length") {
        share(&|m| matches!(m, M::BadLength(_)))
    } else if d.contains("different identifiers") {
        mismatch("identifiers")
    } else if d.contains("different iteration exponents") {
        mismatch("iteration exponents")
    } else if d.contains("mismatching group thresholds") {
        mismatch("group thresholds")
    } else if d.contains("mismatching group counts") {
        mismatch("group counts")
    } else if d.contains("greater group threshold than group counts") {
        share(&|m| matches!(m, M::GroupThreshold { .. }))
    } else if d.contains("duplicate member indices") {
        matches!(e, E::Conflict { .. })
    } else if d.contains("mismatching member thresholds") {
        mismatch("member thresholds")
    } else if d.contains("invalid digest") {
        matches!(e, E::Digest { .. })
    } else if d.contains("Insufficient number of groups")
        || d.contains("insufficient number of members")
        || d.starts_with("5. ")
        || d.starts_with("24. ")
    {
        matches!(e, E::TooFew(_))
    } else {
        false
    }
}

#[test]
fn official_vectors() {
    let vectors: Vec<(String, Vec<String>, String, String)> =
        serde_json::from_str(VECTORS).expect("vectors.json parses");
    assert_eq!(
        vectors.len(),
        45,
        "the checked-in vectors.json has 45 vectors"
    );
    let (mut valid, mut invalid) = (0, 0);
    for (description, mnemonics, secret_hex, _xprv) in &vectors {
        let inputs = Input::numbered(mnemonics);
        if secret_hex.is_empty() {
            let e = match combine(&inputs, b"") {
                Ok(_) => panic!("vector {description:?} must be refused"),
                Err(e) => e,
            };
            assert!(
                expected(description, &e),
                "vector {description:?}: unexpected error: {e}"
            );
            invalid += 1;
        } else {
            let r = combine(&inputs, b"TREZOR")
                .unwrap_or_else(|e| panic!("vector {description:?}: {e}"));
            assert_eq!(
                hex::encode(&r.secret[..]),
                *secret_hex,
                "vector {description:?}"
            );
            assert_eq!(
                r.extendable,
                description.contains("xtendable"),
                "vector {description:?}"
            );
            valid += 1;
        }
    }
    assert_eq!((valid, invalid), (15, 30));
}

/// Every valid vector's mnemonics survive a parse and re-encode unchanged.
#[test]
fn valid_vectors_reencode_identically() {
    let vectors: Vec<(String, Vec<String>, String, String)> =
        serde_json::from_str(VECTORS).expect("vectors.json parses");
    for (description, mnemonics, secret_hex, _) in &vectors {
        if secret_hex.is_empty() {
            continue;
        }
        for m in mnemonics {
            let share = vault::slip39::share::Share::from_mnemonic(m)
                .unwrap_or_else(|e| panic!("{description}: {e}"));
            assert_eq!(&share.to_mnemonic()[..], m.as_str(), "{description}");
        }
    }
}
