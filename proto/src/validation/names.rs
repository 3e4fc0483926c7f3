//! Name rules: DNS-1123 labels and subdomains, as Kubernetes enforces them.

fn check_label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 label: ≤ 63 lower-case alphanumerics or `-`, alphanumeric at both ends.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    if s.len() > 63 || !check_label_chars(s) {
        return Err(format!(
            "{s:?} must be a DNS label: at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain: ≤ 253 characters, labels joined by dots.
pub fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 || !s.split('.').all(check_label_chars) {
        return Err(format!(
            "{s:?} must be a DNS subdomain: at most 253 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(check_dns_label("web-1").is_ok());
        assert!(check_dns_label("Web").is_err());
        assert!(check_dns_label("-web").is_err());
        assert!(check_dns_label("a.b").is_err());
        assert!(check_dns_label(&"a".repeat(64)).is_err());
        assert!(check_dns_subdomain("a.b-c.d").is_ok());
        assert!(check_dns_subdomain("a..b").is_err());
        assert!(check_dns_subdomain("").is_err());
    }
}
