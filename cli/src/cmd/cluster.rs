//! `drover cluster status|add-member|remove-member`: the replicated control
//! plane's members, leader, indexes and lag, and runtime membership changes.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use drover_proto::grpc::ClusterStatusReply;

use crate::output::table;

#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Members, leader, term, commit and applied index, per-member lag.
    Status {
        /// Output format: json, or a table by default.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
    /// Add a member (then start it with `drover server --join`).
    AddMember {
        /// `ID=PEER_HOST:PORT`, the new member's id and `--peer-listen` address.
        member: String,
    },
    /// Remove a member (the leader too: it hands over leadership first).
    RemoveMember {
        /// The member's id.
        id: u64,
    },
}

pub async fn run(server: &str, args: ClusterArgs) -> Result<()> {
    let client = super::connect(server).await?;
    match args.command {
        ClusterCommand::Status { output } => {
            let status = client.cluster_status().await?;
            match output.as_deref() {
                None => print!("{}", render(&status)),
                Some("json") => println!("{}", serde_json::to_string_pretty(&to_json(&status))?),
                Some(other) => bail!("--output {other:?}: use json, or leave it out for a table"),
            }
        }
        ClusterCommand::AddMember { member } => {
            let (id, addr) = parse_member(&member)?;
            client.add_member(id, addr).await?;
            println!("member {id} added (peer address {addr}); start it with --join");
        }
        ClusterCommand::RemoveMember { id } => {
            client.remove_member(id).await?;
            println!("member {id} removed");
        }
    }
    Ok(())
}

/// `ID=HOST:PORT`.
fn parse_member(s: &str) -> Result<(u64, &str)> {
    let Some((id, addr)) = s.split_once('=') else {
        bail!("{s:?} is not ID=PEER_HOST:PORT");
    };
    let id: u64 = id
        .parse()
        .map_err(|_| anyhow::anyhow!("member id {id:?} is not a number"))?;
    if id == 0 {
        bail!("member id 0: ids start at 1");
    }
    if addr
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        bail!("peer address {addr:?} is not HOST:PORT");
    }
    Ok((id, addr))
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The status as a summary line and a member table.
fn render(s: &ClusterStatusReply) -> String {
    let mut out = format!(
        "leader: {}  term: {}  commit: {}  applied: {}  last: {}  snapshot: {}  (answered by member {}, view of member {})\n",
        opt(s.leader),
        s.term,
        s.commit_index,
        s.applied_index,
        s.last_index,
        s.snapshot_index,
        s.answered_by,
        s.id
    );
    if s.role == "Single" {
        out.push_str("single member (started without --peers)\n");
        return out;
    }
    if s.members.is_empty() {
        out.push_str("no members known yet (a joining member waits for the leader)\n");
        return out;
    }
    let rows = s
        .members
        .iter()
        .map(|m| {
            let role = if Some(m.id) == s.leader {
                "leader"
            } else {
                "follower"
            };
            vec![
                m.id.to_string(),
                m.peer_addr.clone(),
                role.to_string(),
                opt(m.match_index),
                opt(m.lag),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["ID", "PEER ADDRESS", "ROLE", "MATCH", "LAG"],
        rows,
        true,
    ));
    out.push('\n');
    out
}

fn to_json(s: &ClusterStatusReply) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "answered_by": s.answered_by,
        "leader": s.leader,
        "term": s.term,
        "role": s.role,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "last_index": s.last_index,
        "snapshot_index": s.snapshot_index,
        "members": s.members.iter().map(|m| serde_json::json!({
            "id": m.id, "peer_addr": m.peer_addr, "match_index": m.match_index, "lag": m.lag,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::grpc::ClusterMember;

    #[test]
    fn members_parse_with_named_errors() {
        assert_eq!(
            parse_member("4=10.0.0.4:7701").unwrap(),
            (4, "10.0.0.4:7701")
        );
        assert!(
            parse_member("4")
                .unwrap_err()
                .to_string()
                .contains("ID=PEER_HOST:PORT")
        );
        assert!(
            parse_member("x=a:1")
                .unwrap_err()
                .to_string()
                .contains("not a number")
        );
        assert!(
            parse_member("0=a:1")
                .unwrap_err()
                .to_string()
                .contains("start at 1")
        );
        assert!(
            parse_member("2=a")
                .unwrap_err()
                .to_string()
                .contains("HOST:PORT")
        );
    }

    #[test]
    fn status_table_marks_the_leader_and_lag() {
        let s = ClusterStatusReply {
            id: 2,
            leader: Some(2),
            term: 7,
            role: "Leader".into(),
            commit_index: 40,
            applied_index: 40,
            last_index: 41,
            snapshot_index: 0,
            members: vec![
                ClusterMember {
                    id: 1,
                    peer_addr: "a:1".into(),
                    match_index: Some(38),
                    lag: Some(3),
                },
                ClusterMember {
                    id: 2,
                    peer_addr: "b:1".into(),
                    match_index: Some(41),
                    lag: Some(0),
                },
            ],
            answered_by: 1,
        };
        let text = render(&s);
        assert!(text.starts_with("leader: 2  term: 7  commit: 40"), "{text}");
        let row1 = text.lines().find(|l| l.starts_with('1')).unwrap();
        assert!(
            row1.contains("follower") && row1.contains("38") && row1.contains('3'),
            "{row1}"
        );
        let row2 = text.lines().find(|l| l.starts_with('2')).unwrap();
        assert!(row2.contains("leader"), "{row2}");
    }
}
