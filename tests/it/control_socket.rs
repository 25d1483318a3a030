//! The control socket: private permissions, one daemon per socket, JSON lines.

use std::os::unix::fs::PermissionsExt;

use nex::control::api::Pong;
use nex::control::health::StatusReport;
use nex::control::{ControlClient, ControlServer, Request};
use tokio_util::sync::CancellationToken;

use crate::control_support::{Home, Running};

#[tokio::test]
async fn socket_is_0600_in_a_0700_dir_and_answers_requests() {
    let home = Home::new();
    // A pre-existing, too open run dir is tightened.
    std::fs::set_permissions(&home.paths.run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = Running::daemon(&home, &["tail"]).await;
    let server = ControlServer::bind(&home.paths.socket).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home.paths.socket), 0o600);
    assert_eq!(mode(&home.paths.run_dir), 0o700);

    // A second daemon on the same socket is refused.
    let again = ControlServer::bind(&home.paths.socket).await.unwrap_err();
    assert_eq!(again.code(), "daemon_already_running");

    let stop = CancellationToken::new();
    let serving =
        tokio::spawn(server.serve(run.handle.clone(), Some(run.bus.clone()), stop.clone()));
    let mut client = ControlClient::connect(&home.paths.socket)
        .await
        .unwrap()
        .unwrap();
    let pong: Pong = client
        .request(&Request::Ping)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(pong.pid, std::process::id());
    let st: StatusReport = client
        .request(&Request::Status)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(st.mode, "daemon");
    assert_eq!(st.persona, "main");
    let err = client
        .request(&Request::Stop {
            target: Some("0000-no-such-job".into()),
        })
        .await
        .unwrap()
        .into_result::<serde_json::Value>()
        .unwrap_err();
    assert_eq!(err.code(), "job_not_found");

    // Garbage gets a coded error and the connection stays usable.
    use futures::{SinkExt, StreamExt};
    let stream = tokio::net::UnixStream::connect(&home.paths.socket)
        .await
        .unwrap();
    let mut raw = tokio_util::codec::Framed::new(stream, tokio_util::codec::LinesCodec::new());
    raw.send("{\"cmd\":\"drop_tables\"}").await.unwrap();
    let line = raw.next().await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "bad_request");
    raw.send("{\"cmd\":\"ping\"}").await.unwrap();
    let line = raw.next().await.unwrap().unwrap();
    assert!(line.contains("\"ok\":true"));

    // `watch` streams bus events as JSON lines.
    raw.send("{\"cmd\":\"watch\"}").await.unwrap();
    let ack: serde_json::Value = serde_json::from_str(&raw.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(ack["result"]["watching"], true);
    let _: serde_json::Value = client
        .request(&Request::Tail { once: false })
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let event: serde_json::Value =
        serde_json::from_str(&raw.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(event["type"], "import.run.started");
    assert_eq!(event["mode"], "tail");
    assert!(event["pid"].is_u64());

    stop.cancel();
    serving.await.unwrap();
    assert!(!home.paths.socket.exists(), "socket removed at shutdown");
    assert!(
        ControlClient::connect(&home.paths.socket)
            .await
            .unwrap()
            .is_none()
    );
    run.stop().await;
}

#[tokio::test]
async fn stale_socket_file_is_replaced() {
    let home = Home::new();
    // A socket bound and dropped leaves a file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&home.paths.socket).unwrap());
    assert!(home.paths.socket.exists());
    assert!(
        ControlClient::connect(&home.paths.socket)
            .await
            .unwrap()
            .is_none()
    );
    let server = ControlServer::bind(&home.paths.socket).await.unwrap();
    assert_eq!(server.path(), home.paths.socket.as_path());
}
