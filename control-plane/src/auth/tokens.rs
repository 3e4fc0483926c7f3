//! Bearer tokens from a file (`--token-auth-file`), in Kubernetes'
//! static-token CSV format: `token,user,uid,"group1,group2"`. The server
//! reads the file again when it changes, so deleting a line revokes
//! that token without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use drover_proto::identity::Identity;

/// Tokens and who they stand for.
#[derive(Debug, Clone, Default)]
pub struct TokenBook {
    tokens: HashMap<String, Identity>,
}

/// A line of the token file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", line_suffix(.line))]
pub struct TokenFileError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// `:N` after the file name, unless the error is about the whole file.
fn line_suffix(line: &usize) -> String {
    match line {
        0 => String::new(),
        n => format!(":{n}"),
    }
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

    /// Reads and parses a token file.
    pub fn read(path: &Path) -> Result<TokenBook, TokenFileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TokenFileError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        TokenBook::parse(&text, &file)
    }
}

/// The tokens a server accepts now: fixed, or those of a file that is
/// read again whenever it changes.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    book: Arc<RwLock<TokenBook>>,
    file: Option<PathBuf>,
}

impl Tokens {
    /// Tokens that never change (`drover dev`, tests).
    pub fn fixed(book: TokenBook) -> Tokens {
        Tokens {
            book: Arc::new(RwLock::new(book)),
            file: None,
        }
    }

    /// The tokens of `path` (`--token-auth-file`), read now; see
    /// [`Tokens::spawn_reload`].
    pub fn from_file(path: &Path) -> Result<Tokens, TokenFileError> {
        Ok(Tokens {
            book: Arc::new(RwLock::new(TokenBook::read(path)?)),
            file: Some(path.to_path_buf()),
        })
    }

    /// Who a token belongs to, now.
    pub fn lookup(&self, token: &str) -> Option<Identity> {
        let book = self.book.read().unwrap_or_else(|e| e.into_inner());
        book.lookup(token).cloned()
    }

    /// Polls the token file (if any) and swaps in its new contents; a file
    /// with an error leaves the tokens as they were. Needs a tokio runtime.
    pub fn spawn_reload(&self) -> Option<tokio::task::JoinHandle<()>> {
        let file = self.file.clone()?;
        let book = self.book.clone();
        Some(super::reload::spawn_watch(
            file,
            "--token-auth-file",
            move |path| {
                let fresh = TokenBook::read(path).map_err(|e| e.to_string())?;
                *book.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                Ok(())
            },
        ))
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

    #[tokio::test]
    async fn a_changed_file_replaces_the_tokens_and_a_broken_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "t1,alice,1\nt2,bob,2\n").unwrap();
        let tokens = Tokens::from_file(&path).unwrap();
        let watch = tokens.spawn_reload().unwrap();
        assert!(tokens.lookup("t2").is_some());
        let eventually = |want: bool| {
            let tokens = tokens.clone();
            async move {
                for _ in 0..100 {
                    if tokens.lookup("t2").is_some() == want {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                panic!("t2 should be known: {want}");
            }
        };
        std::fs::write(&path, "t1,alice,1\n").unwrap();
        eventually(false).await;
        assert!(tokens.lookup("t1").is_some());
        // Broken: the last good version stays.
        std::fs::write(&path, "t1,alice,1\nbroken\nt2,bob,2\n").unwrap();
        tokio::time::sleep(super::super::reload::POLL_INTERVAL * 3).await;
        assert!(tokens.lookup("t1").is_some() && tokens.lookup("t2").is_none());
        std::fs::write(&path, "t2,bob,2\n").unwrap();
        eventually(true).await;
        watch.abort();
        let missing = Tokens::from_file(&dir.path().join("nope.csv")).unwrap_err();
        assert!(
            missing.to_string().contains("nope.csv: cannot read"),
            "{missing}"
        );
    }
}
