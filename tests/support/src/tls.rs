//! A throwaway TLS certificate for servers the tests and benchmarks start on 127.0.0.1.

use std::path::Path;
use std::process::Command;

/// Debian's `openssl`, which makes the certificate.
pub const OPENSSL: &str = "/usr/bin/openssl";

/// Writes a self-signed EC (P-256) certificate for `127.0.0.1`, valid for a day, and its key.
pub fn self_signed_certificate(cert: &Path, key: &Path) {
    let made = Command::new(OPENSSL)
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
}
