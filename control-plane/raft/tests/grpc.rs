//! Three members over real loopback sockets (tonic), concurrent writers, a member killed.

mod common;

use std::time::{Duration, Instant};

use common::{Applied, SharedList, config};
use drover_raft::grpc::{GrpcTransport, RaftService};
use drover_raft::{Members, ProposeError, RaftHandle, RaftNode, Startup};
use tokio_stream::wrappers::TcpListenerStream;

const TICK: Duration = Duration::from_millis(10);
const DEADLINE: Duration = Duration::from_secs(15);

struct GrpcMember {
    handle: RaftHandle<u64>,
    applied: Applied,
    server: tokio::task::JoinHandle<()>,
    thread: std::sync::Mutex<Option<drover_raft::NodeThread>>,
}

async fn start(
    id: u64,
    listener: tokio::net::TcpListener,
    root: &std::path::Path,
    startup: Startup,
) -> GrpcMember {
    let (sm, applied) = SharedList::new();
    let transport = GrpcTransport::new(id, tokio::runtime::Handle::current());
    let (handle, thread) = RaftNode::start(
        config(id, TICK),
        &root.join(format!("member-{id}")),
        sm,
        transport,
        startup,
    )
    .unwrap();
    let service = RaftService::new(handle.inbox(), None).into_server();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    GrpcMember {
        handle,
        applied,
        server,
        thread: std::sync::Mutex::new(Some(thread)),
    }
}

async fn write(members: &[&GrpcMember], cmd: Vec<u8>) -> Result<u64, ProposeError> {
    let start = Instant::now();
    let mut i = 0usize;
    loop {
        let m = members[i % members.len()];
        match m.handle.propose(cmd.clone()).await {
            Ok(idx) => return Ok(idx),
            Err(ProposeError::NotLeader { leader }) => {
                i = leader
                    .and_then(|l| members.iter().position(|m| m.handle.id() == l))
                    .unwrap_or(i + 1);
                if leader.is_none() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Err(ProposeError::Stopped) => i += 1,
            Err(e) => return Err(e),
        }
        if start.elapsed() > DEADLINE {
            return Err(ProposeError::Dropped);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_on_loopback_survive_a_killed_member() {
    let dir = tempfile::tempdir().unwrap();
    let mut listeners = Vec::new();
    let mut members = Members::new();
    for id in 1..=3u64 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.insert(id, l.local_addr().unwrap().to_string());
        listeners.push(l);
    }
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        nodes.push(
            start(
                i as u64 + 1,
                l,
                dir.path(),
                Startup::Bootstrap(members.clone()),
            )
            .await,
        );
    }
    let all: Vec<&GrpcMember> = nodes.iter().collect();

    // Concurrent writers.
    let mut tasks = Vec::new();
    for w in 0..6 {
        let handles: Vec<RaftHandle<u64>> = nodes.iter().map(|n| n.handle.clone()).collect();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..20 {
                let cmd = format!("w{w}-{i}").into_bytes();
                let deadline = Instant::now() + DEADLINE;
                'retry: while Instant::now() < deadline {
                    for h in &handles {
                        if h.propose(cmd.clone()).await.is_ok() {
                            acked.push(cmd.clone());
                            break 'retry;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 120);

    // Kill the leader (node thread and its server).
    let leader = all
        .iter()
        .find(|m| m.handle.leadership().borrow().is_leader())
        .map(|m| m.handle.id())
        .unwrap();
    let victim = all.iter().find(|m| m.handle.id() == leader).unwrap();
    victim.handle.shutdown().await;
    victim.server.abort();
    let rest: Vec<&GrpcMember> = all
        .iter()
        .copied()
        .filter(|m| m.handle.id() != leader)
        .collect();
    write(&rest, b"after-kill".to_vec()).await.unwrap();
    acked.push(b"after-kill".to_vec());
    for i in 0..30 {
        let c = format!("while-down-{i}").into_bytes();
        write(&rest, c.clone()).await.unwrap();
        acked.push(c);
    }

    // Restart the killed member on its old address: it catches up.
    let thread = victim.thread.lock().unwrap().take().unwrap();
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = members[&leader].clone();
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    let back = start(leader, listener, dir.path(), Startup::Restart).await;
    let t = Instant::now();
    while back.applied.lock().unwrap().len() < acked.len() {
        assert!(t.elapsed() < DEADLINE, "restarted member did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let rest: Vec<&GrpcMember> = rest.into_iter().chain(std::iter::once(&back)).collect();
    for m in &rest {
        m.handle.read_index().await.unwrap();
        let items = m.applied.lock().unwrap().clone();
        for a in &acked {
            assert_eq!(
                items.iter().filter(|c| *c == a).count(),
                1,
                "member {}",
                m.handle.id()
            );
        }
        assert_eq!(items, rest[0].applied.lock().unwrap().clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_unknown_peers_are_refused_over_grpc() {
    use drover_proto::raft_grpc::RaftEnvelope;
    use drover_proto::raft_grpc::raft_transport_client::RaftTransportClient;
    use protobuf::Message as _;

    let dir = tempfile::tempdir().unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let members: Members = [(1, addr.clone()), (2, "127.0.0.1:1".to_owned())].into();
    let _m = start(1, l, dir.path(), Startup::Bootstrap(members)).await;

    let mut msg = raft::prelude::Message::default();
    msg.set_msg_type(raft::prelude::MessageType::MsgHeartbeat);
    msg.from = 9;
    msg.to = 1;
    let env = RaftEnvelope {
        from: 9,
        to: 1,
        message: msg.write_to_bytes().unwrap(),
    };
    let mut client = RaftTransportClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let err = client
        .send(tokio_stream::iter(vec![env]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_member_joins_over_grpc_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut listeners = Vec::new();
    let mut members = Members::new();
    for id in 1..=4u64 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.insert(id, l.local_addr().unwrap().to_string());
        listeners.push(l);
    }
    let l4 = listeners.pop().unwrap();
    let addr4 = members.remove(&4).unwrap();
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        nodes.push(
            start(
                i as u64 + 1,
                l,
                dir.path(),
                Startup::Bootstrap(members.clone()),
            )
            .await,
        );
    }
    let all: Vec<&GrpcMember> = nodes.iter().collect();
    for i in 0..50 {
        write(&all, format!("c{i}").into_bytes()).await.unwrap();
    }
    let m4 = start(4, l4, dir.path(), Startup::Join(members.clone())).await;
    let leader = all
        .iter()
        .find(|m| m.handle.leadership().borrow().is_leader())
        .unwrap();
    leader.handle.add_member(4, addr4).await.unwrap();
    write(&all, b"with-4".to_vec()).await.unwrap();
    let start_t = Instant::now();
    while m4.applied.lock().unwrap().len() < 51 {
        assert!(start_t.elapsed() < DEADLINE, "member 4 did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = m4.handle.status().await.unwrap();
    assert_eq!(st.members.len(), 4);
    assert!(st.leadership.leader.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_runs_a_command_on_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (sm, applied) = SharedList::new();
    let (handle, _thread) = RaftNode::start(
        config(1, TICK),
        &dir.path().join("member-1"),
        sm,
        GrpcTransport::new(1, tokio::runtime::Handle::current()),
        Startup::Bootstrap([(1, addr.clone())].into()),
    )
    .unwrap();
    let h = handle.clone();
    let forwarder: drover_raft::grpc::Forwarder = std::sync::Arc::new(move |cmd| {
        let h = h.clone();
        Box::pin(async move {
            h.propose(cmd)
                .await
                .map(|index| index.to_be_bytes().to_vec())
                .map_err(|e| tonic::Status::unavailable(e.to_string()))
        })
    });
    let service = RaftService::new(handle.inbox(), Some(forwarder)).into_server();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let reply = drover_raft::grpc::forward(&addr, b"forwarded".to_vec())
        .await
        .unwrap();
    assert_eq!(reply.len(), 8);
    assert_eq!(applied.lock().unwrap().clone(), vec![b"forwarded".to_vec()]);
}
