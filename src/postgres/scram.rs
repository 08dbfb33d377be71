//! SCRAM-SHA-256 password verifiers as PostgreSQL stores them in `pg_authid.rolpassword`:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. tandem computes them locally so
//! the plaintext never reaches SQL text, argv or a log, and checks a stored verifier against
//! the password so a converged role reports no change.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A new verifier with a random salt (PostgreSQL's own defaults: 4096 iterations).
pub fn verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// Does `stored` (a `rolpassword` value) verify `password`? Recomputes StoredKey with the
/// stored salt and iteration count; anything unparsable is "no".
pub fn matches(stored: &str, password: &str) -> bool {
    let Some(rest) = stored.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((params, keys)) = rest.split_once('$') else {
        return false;
    };
    let Some((iterations, salt)) = params.split_once(':') else {
        return false;
    };
    let Some((stored_key, _server_key)) = keys.split_once(':') else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(stored_key)) = (
        iterations.parse::<u32>(),
        STANDARD.decode(salt),
        STANDARD.decode(stored_key),
    ) else {
        return false;
    };
    if iterations == 0 || iterations > 10_000_000 {
        return false;
    }
    let prepared = match stringprep::saslprep(password) {
        Ok(p) => p.into_owned().into_bytes(),
        Err(_) => password.as_bytes().to_vec(),
    };
    let salted = hi(&prepared, &salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let computed = Sha256::digest(client_key);
    // Not secret-dependent timing worth guarding: both sides are already known to the caller.
    computed.as_slice() == stored_key.as_slice()
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// RFC 5802's Hi(): PBKDF2 with HMAC-SHA-256, one block.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_verifier_matches_its_password_only() {
        let v = verifier("correct horse");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        assert!(matches(&v, "correct horse"));
        assert!(!matches(&v, "correct horse "));
        assert!(!matches("md5abcdef", "correct horse"));
        assert!(!matches("SCRAM-SHA-256$x", "correct horse"));
    }

    #[test]
    fn matches_an_independently_computed_verifier() {
        // Computed with Python's hashlib.pbkdf2_hmac and hmac, the formula PostgreSQL uses.
        let stored = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$Ck45iK+pCC2J0BAYW18G2p/8vmSu+UeSRxzpVuWVcwk=:FEjdgAZVDXH3OuQg03rVf5MG5lGPwnuc9uVg248FCyU=";
        assert!(matches(stored, "tandem"));
        assert!(!matches(stored, "tandem2"));
    }
}
