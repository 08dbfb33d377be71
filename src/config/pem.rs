//! PEM documents the operator hands in (certificate chains, private CA roots, keys): what each
//! block is, so a private key never travels where only certificates belong. Messages name a
//! block by its number and label, never a byte of its content.

/// The labels of a PEM document's blocks, in order (`CERTIFICATE`, `PRIVATE KEY`, ...), or why
/// it is not one: a block that does not end, or ends with another label.
pub fn labels(text: &str) -> Result<Vec<String>, String> {
    let mut labels = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = boundary(line, "BEGIN") {
            if let Some(was) = &open {
                return Err(format!(
                    "block {} ({was}) has no END line before the next BEGIN",
                    labels.len() + 1
                ));
            }
            open = Some(label.to_string());
        } else if let Some(label) = boundary(line, "END") {
            match open.take() {
                Some(begun) if begun == label => labels.push(begun),
                Some(begun) => {
                    return Err(format!(
                        "block {} begins as {begun} and ends as {label}",
                        labels.len() + 1
                    ));
                }
                None => return Err(format!("an END line ({label}) without its BEGIN")),
            }
        }
    }
    match open {
        Some(begun) => Err(format!(
            "block {} ({begun}) has no END line",
            labels.len() + 1
        )),
        None => Ok(labels),
    }
}

/// `-----BEGIN LABEL-----` (or END): the label.
fn boundary<'a>(line: &'a str, which: &str) -> Option<&'a str> {
    line.strip_prefix("-----")?
        .strip_suffix("-----")?
        .strip_prefix(which)?
        .strip_prefix(' ')
}

/// Why `text` is not a chain of certificates only: no certificate at all, a block that is not
/// a certificate (a private key pasted into the chain, above all), a broken block or a NUL.
pub fn certificates_only(text: &str) -> Result<usize, String> {
    if text.contains('\0') {
        return Err("it holds a NUL byte".into());
    }
    let labels = labels(text)?;
    if let Some((i, label)) = labels
        .iter()
        .enumerate()
        .find(|(_, label)| label.as_str() != "CERTIFICATE")
    {
        let what = if label.contains("PRIVATE KEY") {
            " (a private key: keep it out of this file, it would be installed world-readable)"
        } else {
            ""
        };
        return Err(format!(
            "block {} is a {label}, where only certificates belong{what}",
            i + 1
        ));
    }
    if labels.is_empty() {
        return Err("it holds no -----BEGIN CERTIFICATE----- block".into());
    }
    Ok(labels.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_private_key_in_a_chain_is_refused_by_its_block_never_shown() {
        assert_eq!(certificates_only(&format!("{CERT}{CERT}")), Ok(2));
        for key in [
            "-----BEGIN PRIVATE KEY-----\nS3CR3T\n-----END PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nS3CR3T\n-----END RSA PRIVATE KEY-----\n",
            "-----BEGIN EC PRIVATE KEY-----\nS3CR3T\n-----END EC PRIVATE KEY-----\n",
        ] {
            let why = certificates_only(&format!("{CERT}{key}")).unwrap_err();
            assert!(
                why.starts_with("block 2 is a ") && why.contains("private key"),
                "{why}"
            );
            assert!(!why.contains("S3CR3T"), "{why}");
            let first = certificates_only(&format!("{key}{CERT}")).unwrap_err();
            assert!(first.starts_with("block 1 is a "), "{first}");
        }
        // Text between blocks (openssl's subject= lines) is fine; broken blocks are not.
        assert_eq!(certificates_only(&format!("subject=CN=x\n{CERT}")), Ok(1));
        assert!(certificates_only("-----BEGIN CERTIFICATE-----\nMIIB\n").is_err());
        assert!(
            certificates_only("-----BEGIN CERTIFICATE-----\nx\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        assert!(certificates_only("no pem here\n").is_err());
        assert!(certificates_only(&format!("{CERT}\0")).is_err());
    }
}
