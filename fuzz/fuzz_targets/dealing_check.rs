//! Structure-aware fuzzing of the dealing check (`vault::dealing`): the
//! check values and revealed sub-shares a validator receives from peers
//! go to `verify` and `settle`, which must answer with a verdict or an
//! error, never panic, and name only dealers of the plan.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vault::dealing::{settle, verify, Settlement, Verdict};

#[derive(Arbitrary, Debug)]
struct Input {
    dealers: Vec<u8>,
    t: u8,
    t_new: u8,
    f: u8,
    values: Vec<(u8, Vec<Vec<u8>>)>,
    disputed: u8,
    revealed: Vec<Vec<u8>>,
}

fuzz_target!(|i: Input| {
    // Real plans are small; keep each input cheap.
    if i.dealers.len() > 16
        || i.values.len() > 16
        || i.f > 4
        || i.values
            .iter()
            .any(|(_, v)| v.len() > 16 || v.iter().any(|x| x.len() > 64))
        || i.revealed.len() > 16
        || i.revealed.iter().any(|x| x.len() > 64)
    {
        return;
    }
    if let Ok(Verdict::Inconsistent { dealers, .. }) =
        verify(&i.dealers, i.t, i.t_new, i.f, &i.values)
    {
        assert!(dealers.iter().all(|d| i.dealers.contains(d)));
    }
    if let Ok(Settlement::Dealer(j)) =
        settle(&i.dealers, i.t, i.t_new, &i.values, i.disputed, &i.revealed)
    {
        assert!(i.dealers.contains(&j));
    }
});
