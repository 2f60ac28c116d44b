//! ES256 (ECDSA on P-256 with SHA-256) verification with tables of multiples: of the curve's
//! generator, made once, and of each provider key, made once a signature by it has verified.
//!
//! A verification computes `u1·G + u2·Q` for the generator `G` and the key's point `Q`. aws-lc
//! (like ring) has a table of multiples only for `G` and computes the multiple of `Q` afresh
//! each time, with 256 point doublings; here `Q` has a
//! table of its own, so both multiples are 33 additions of table entries and nothing else.
//! That makes an ES256 verification about a third cheaper (see docs/performance.md). A key gets
//! its table only after `aws-lc-rs` has verified one of its signatures (`jwk.rs`).
//!
//! The curve arithmetic (field elements, point addition and doubling, normalisation, the
//! scalars modulo the group order) is the `p256` crate's; this module only chooses which
//! multiples to add, and checks the signature by the ECDSA verification equation (SEC 1 v2,
//! 4.1.4). Everything here is public data (keys, messages, signatures), so nothing needs to run
//! in constant time. The tests check it against aws-lc on random keys and signatures, and
//! against the Wycheproof vectors of edge cases (docs/security.md, "ES256 signatures").

use std::sync::LazyLock;

use aws_lc_rs::digest;
use p256::elliptic_curve::PrimeField as _;
use p256::elliptic_curve::group::{Curve as _, Group as _};
use p256::elliptic_curve::ops::{Invert as _, Reduce};
use p256::elliptic_curve::point::AffineCoordinates as _;
use p256::{AffinePoint, FieldBytes, NonZeroScalar, ProjectivePoint, PublicKey, Scalar};

/// Bits of a scalar taken at a time: each table row holds the multiples `1..=128` of
/// `256^row · P`, and a scalar is written in signed base-256 digits (`-128..=127`), one per row.
const DIGIT_BITS: usize = 8;
/// Entries of a row: the multiples `1..=2^(DIGIT_BITS-1)`; a negative digit takes the negation.
const ROW: usize = 1 << (DIGIT_BITS - 1);
/// Rows of a table: a 256-bit scalar has 32 digits, and a 33rd takes the carry of the last.
const ROWS: usize = 256 / DIGIT_BITS + 1;

/// The multiples of one point by which any scalar multiple of it is a sum of [`ROWS`] entries
/// (about 300 KiB).
struct Multiples {
    /// `entries[row * ROW + j - 1] = j · 256^row · P`, in affine form, for `j` in `1..=ROW`.
    entries: Vec<AffinePoint>,
}

impl Multiples {
    /// The table of `point` (4,224 additions and 33 normalisations; about 3 ms).
    fn of(point: ProjectivePoint) -> Self {
        let mut entries = vec![AffinePoint::IDENTITY; ROWS * ROW];
        let mut row_base = point;
        let mut row = vec![ProjectivePoint::IDENTITY; ROW];
        for affine_row in entries.chunks_exact_mut(ROW) {
            let mut multiple = row_base;
            for entry in row.iter_mut() {
                *entry = multiple;
                multiple += row_base;
            }
            ProjectivePoint::batch_normalize(&row, affine_row);
            for _ in 0..DIGIT_BITS {
                row_base = row_base.double();
            }
        }
        Multiples { entries }
    }

    /// `k · P`, as the sum of one entry (or its negation) per nonzero digit of `k`.
    fn times(&self, k: &Scalar) -> ProjectivePoint {
        // The big-endian bytes of `k`, read from the least significant: each byte plus the
        // carry is a digit in 0..=256, written as d - 256 (and a carry) from 128 up.
        let bytes = k.to_repr();
        let mut sum = ProjectivePoint::IDENTITY;
        let mut carry = 0i16;
        for (row, entries) in self.entries.chunks_exact(ROW).enumerate() {
            let byte = bytes.len().checked_sub(row + 1).map_or(0, |i| bytes[i]);
            let mut digit = i16::from(byte) + carry;
            carry = i16::from(digit >= 128);
            digit -= carry << 8;
            match usize::from(digit.unsigned_abs()) {
                0 => {}
                d if digit > 0 => sum += &entries[d - 1],
                d => sum -= &entries[d - 1],
            }
        }
        sum
    }
}

/// The generator's table, made with the first key's table.
static GENERATOR: LazyLock<Multiples> = LazyLock::new(|| Multiples::of(ProjectivePoint::GENERATOR));

/// A provider's P-256 key, ready to verify ES256 signatures.
pub(crate) struct Es256Key {
    multiples: Multiples,
}

impl std::fmt::Debug for Es256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Es256Key")
    }
}

impl Es256Key {
    /// The key of an uncompressed SEC1 point (`04 ‖ x ‖ y`), with its table (and the
    /// generator's, the first time); `None` when it is not a point of the curve other than the
    /// identity.
    pub(crate) fn from_sec1(point: &[u8]) -> Option<Self> {
        if point.first() != Some(&0x04) {
            return None;
        }
        let key = PublicKey::from_sec1_bytes(point).ok()?;
        LazyLock::force(&GENERATOR);
        Some(Es256Key {
            multiples: Multiples::of(key.to_projective()),
        })
    }

    /// Whether `signature` (`r ‖ s`, 32 bytes each, as JWS writes it) is this key's ECDSA
    /// signature of the SHA-256 digest of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Some((r, s)) = signature_scalars(signature) else {
            return false;
        };
        let digest = digest::digest(&digest::SHA256, message);
        let Some(digest) = FieldBytes::try_from(digest.as_ref()).ok() else {
            return false;
        };
        // The digest's 256 bits as an integer, reduced modulo the group order n.
        let e = <Scalar as Reduce<FieldBytes>>::reduce(&digest);
        let w = *s.invert_vartime();
        let u1 = e * w;
        let u2 = *r * w;
        let point = GENERATOR.times(&u1) + self.multiples.times(&u2);
        if bool::from(point.is_identity()) {
            return false;
        }
        // The point's x coordinate (less than p), reduced modulo n, must be r.
        let x = <Scalar as Reduce<FieldBytes>>::reduce(&point.to_affine().x());
        x == *r
    }
}

/// `r` and `s` of a signature: each 32 big-endian bytes, in `1..n`.
fn signature_scalars(signature: &[u8]) -> Option<(NonZeroScalar, NonZeroScalar)> {
    if signature.len() != 64 {
        return None;
    }
    let (r, s) = signature.split_at(32);
    let scalar = |bytes: &[u8]| -> Option<NonZeroScalar> {
        let bytes = FieldBytes::try_from(bytes).ok()?;
        Option::from(NonZeroScalar::from_repr(bytes))
    };
    Some((scalar(r)?, scalar(s)?))
}

#[cfg(test)]
mod tests;
