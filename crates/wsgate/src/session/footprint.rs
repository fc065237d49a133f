//! What an idle connection's session costs in memory, kept in check: the
//! session future lives as long as the connection, inside its task, so every
//! byte it grows by is paid once per connection (docs/benchmarks.md,
//! "Performance round 2").

use tokio::net::TcpStream;

/// The size of the future `f` returns, without calling it.
fn returned_size<A, B, C, D, E, G, F>(_: fn(A, B, C, D, E, G) -> F) -> usize {
    std::mem::size_of::<F>()
}

#[test]
fn the_session_future_stays_small() {
    let size = returned_size(super::run::<TcpStream>);
    eprintln!("the session future is {size} bytes");
    // 1,712 bytes in test builds when this was written (smaller in release),
    // 1,840 once `refresh` learned to leave rooms and connect to retry the
    // registry, 1,584 after round 2 (#15: inline timer, one wake-up, `Busy`
    // boxed, no `ClientAddr`), 1,112 with our own frame reader instead of
    // tungstenite's `WebSocketStream`, 648 once the session was stored once
    // instead of twice (an `async fn` taking `self` by value holds the
    // argument and its binding), the registry-failure close was boxed and the
    // node's timer wheel replaced the session's `Sleep`. The budget leaves
    // room for a field or two, not for an await state that holds a request
    // handler (box those, as `serve` does).
    let budget = 700;
    assert!(
        size <= budget,
        "the session future is {size} bytes, over its budget of {budget}"
    );
}
