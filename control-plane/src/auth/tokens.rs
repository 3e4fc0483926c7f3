//! Bearer tokens from a file (`--token-auth-file`), in Kubernetes'
//! static-token CSV format: `token,user,uid,"group1,group2"`.

use std::collections::HashMap;

use drover_proto::identity::Identity;

/// Tokens and who they stand for.
#[derive(Debug, Clone, Default)]
pub struct TokenBook {
    tokens: HashMap<String, Identity>,
}

/// A line of the token file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TokenFileError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl TokenBook {
    pub fn parse(text: &str, file: &str) -> Result<TokenBook, TokenFileError> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |message: &str| TokenFileError {
                file: file.to_string(),
                line: i + 1,
                message: message.to_string(),
            };
            // The groups column is last and may be quoted with commas inside.
            let mut fields = line.splitn(4, ',');
            let token = fields.next().unwrap_or("").trim();
            let user = fields.next().unwrap_or("").trim();
            let _uid = fields.next();
            let groups = fields
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect();
            if token.is_empty() || user.is_empty() {
                return Err(fail("expected token,user,uid[,\"group1,group2\"]"));
            }
            let identity = Identity {
                user: user.to_string(),
                groups,
            };
            if tokens.insert(token.to_string(), identity).is_some() {
                return Err(fail("this token is listed twice"));
            }
        }
        Ok(TokenBook { tokens })
    }

    /// Who a token belongs to.
    pub fn lookup(&self, token: &str) -> Option<&Identity> {
        self.tokens.get(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_like_kubernetes_static_tokens() {
        let book = TokenBook::parse(
            "# comment\nt1,alice,1\nt2,bob,2,\"devs,ops\"\n",
            "tokens.csv",
        )
        .unwrap();
        assert_eq!(book.lookup("t1").map(|i| i.user.as_str()), Some("alice"));
        assert_eq!(
            book.lookup("t2").map(|i| i.groups.clone()),
            Some(vec!["devs".to_string(), "ops".to_string()])
        );
        assert!(book.lookup("t3").is_none());
        let e = TokenBook::parse("t1,alice\nbroken\n", "tokens.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "tokens.csv:2: expected token,user,uid[,\"group1,group2\"]"
        );
    }
}
