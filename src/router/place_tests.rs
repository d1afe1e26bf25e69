//! The decider by table: one row per rule of `place.rs`, each a request,
//! the session's facts and the cluster, and the node, reason and fallback
//! expected.

use std::time::Duration;

use super::*;
use crate::router::classify;
use crate::topology::gtid::GtidPos;
use crate::topology::{IoThread, NodeState, NodeStatus, ReplicationStatus, Role};

const MASTER: NodeId = 0;
const REPLICA: NodeId = 1;

/// cn1 (master, port 3301) and cn2 replicating from it with `lag` seconds,
/// at GTID position `replica_pos`.
fn cluster(lag: u64, replica_pos: &str) -> TopologySnapshot {
    let mut m = NodeStatus::new(MASTER, "cn1", "127.0.0.1:3301", 1, Role::Master);
    m.state = NodeState::Up;
    let mut r = NodeStatus::new(REPLICA, "cn2", "127.0.0.1:3302", 1, Role::Replica);
    r.state = NodeState::Up;
    r.replication = Some(ReplicationStatus {
        io_thread: IoThread::Running,
        sql_running: true,
        seconds_behind_master: Some(lag),
        gtid_io_pos: None,
        last_io_error: None,
        last_sql_error: None,
        master_host: Some("127.0.0.1".into()),
        master_port: Some(3301),
    });
    r.gtid_current = replica_pos.parse::<GtidPos>().ok();
    TopologySnapshot {
        nodes: vec![m, r],
        master: Some(MASTER),
        generation: 1,
    }
}

fn settings() -> Settings {
    Settings {
        read_split: true,
        consistency: Consistency::Session,
        max_lag: Duration::from_secs(30),
    }
}

/// A random number that draws the replica with two nodes of weight 1.
const DRAW_REPLICA: u64 = 1;
const DRAW_MASTER: u64 = 0;

fn place_with(
    request: Request,
    session: SessionFacts,
    topology: &TopologySnapshot,
    settings: Settings,
    random: u64,
) -> Result<Placement, PlaceError> {
    place(&PlaceInput {
        request,
        session,
        topology,
        settings,
        random,
        applied_all_acked: 0,
    })
}

/// Where a statement went: (node, why, fallback).
type Placed = (NodeId, Why, Option<NodeId>);

/// (node, why, fallback) for a statement on the healthy cluster.
fn check(sql: &str, session: SessionFacts, random: u64) -> Placed {
    let stmt = classify(sql.as_bytes());
    let topo = cluster(0, "0-1-100");
    let p = place_with(
        Request::Statement(&stmt),
        session,
        &topo,
        settings(),
        random,
    )
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
    (p.node, p.route.why, p.fallback)
}

#[test]
fn statements_by_table() {
    let idle = SessionFacts::default();
    let in_tx = SessionFacts {
        in_transaction: true,
        ..idle
    };
    let pinned = SessionFacts {
        pinned: true,
        ..idle
    };
    let after_replica_read = SessionFacts {
        last_node: Some(REPLICA),
        ..idle
    };
    let rows: &[(&str, SessionFacts, u64, Placed)] = &[
        (
            "SELECT 1",
            idle,
            DRAW_REPLICA,
            (REPLICA, Why::Read, Some(MASTER)),
        ),
        ("SELECT 1", idle, DRAW_MASTER, (MASTER, Why::Read, None)),
        (
            "INSERT INTO t VALUES (1)",
            idle,
            DRAW_REPLICA,
            (MASTER, Why::Write, None),
        ),
        (
            "SELECT 1",
            in_tx,
            DRAW_REPLICA,
            (MASTER, Why::Transaction, None),
        ),
        (
            "SELECT 1",
            pinned,
            DRAW_REPLICA,
            (MASTER, Why::Pinned, None),
        ),
        (
            "SELECT 1 FOR UPDATE",
            idle,
            DRAW_REPLICA,
            (MASTER, Why::Locking, None),
        ),
        (
            "SHOW WARNINGS",
            after_replica_read,
            DRAW_MASTER,
            (REPLICA, Why::SameConnection, None),
        ),
        (
            "SHOW WARNINGS",
            idle,
            DRAW_REPLICA,
            (MASTER, Why::SameConnection, None),
        ),
        // A write after it: never on the replica the previous read used.
        (
            "SHOW WARNINGS; INSERT INTO t VALUES (1)",
            after_replica_read,
            DRAW_REPLICA,
            (MASTER, Why::SameConnection, None),
        ),
        (
            "SELECT @@warning_count; UPDATE t SET a = 1",
            after_replica_read,
            DRAW_REPLICA,
            (MASTER, Why::SameConnection, None),
        ),
        (
            "SHOW WARNINGS; SELECT 1",
            after_replica_read,
            DRAW_MASTER,
            (REPLICA, Why::SameConnection, None),
        ),
        (
            "/* sqlproxy:master */ SELECT 1",
            idle,
            DRAW_REPLICA,
            (MASTER, Why::Hint, None),
        ),
        (
            "/* sqlproxy:replica */ SELECT 1",
            idle,
            DRAW_REPLICA,
            (REPLICA, Why::Hint, Some(MASTER)),
        ),
    ];
    for (sql, facts, random, want) in rows {
        assert_eq!(check(sql, *facts, *random), *want, "{sql} with {facts:?}");
    }
}

#[test]
fn executions_with_a_cursor_long_data_or_a_cache_miss_run_on_the_master() {
    let read = classify(b"SELECT a FROM t");
    let write = classify(b"UPDATE t SET a = 1");
    let topo = cluster(0, "0-1-100");
    let rows = [
        (Request::Cursor(&read), Why::Cursor),
        (Request::LongData(&read), Why::LongData),
        (Request::CacheMiss(&read), Why::CacheMiss),
        // A write keeps its own reason.
        (Request::Cursor(&write), Why::Write),
        (Request::Master(Why::Prepare), Why::Prepare),
    ];
    for (request, why) in rows {
        let p = place_with(
            request,
            SessionFacts::default(),
            &topo,
            settings(),
            DRAW_REPLICA,
        )
        .unwrap_or_else(|e| panic!("{request:?}: {e}"));
        assert_eq!(
            (p.node, p.route.why, p.fallback),
            (MASTER, why, None),
            "{request:?}"
        );
        assert_eq!(p.route.target, Target::Master);
    }
}

#[test]
fn a_read_waits_for_its_own_write_on_the_master() {
    let stmt = classify(b"SELECT 1");
    let mine: Gtid = "0-1-120".parse().expect("gtid");
    let session = SessionFacts {
        last_gtid: Some(&mine),
        ..SessionFacts::default()
    };
    let behind = cluster(0, "0-1-100");
    let p = place_with(
        Request::Statement(&stmt),
        session,
        &behind,
        settings(),
        DRAW_REPLICA,
    );
    assert_eq!(p.map(|p| p.node), Ok(MASTER), "the replica lacks 0-1-120");
    let caught_up = cluster(0, "0-1-130");
    let p = place_with(
        Request::Statement(&stmt),
        session,
        &caught_up,
        settings(),
        DRAW_REPLICA,
    );
    assert_eq!(p.map(|p| p.node), Ok(REPLICA));
    let eventual = Settings {
        consistency: Consistency::Eventual,
        ..settings()
    };
    let p = place_with(
        Request::Statement(&stmt),
        session,
        &behind,
        eventual,
        DRAW_REPLICA,
    );
    assert_eq!(p.map(|p| p.node), Ok(REPLICA), "eventual reads ignore it");
}

#[test]
fn settings_keep_reads_on_the_master() {
    let stmt = classify(b"SELECT 1");
    let topo = cluster(0, "0-1-100");
    let no_split = Settings {
        read_split: false,
        ..settings()
    };
    let p = place_with(
        Request::Statement(&stmt),
        SessionFacts::default(),
        &topo,
        no_split,
        1,
    );
    assert_eq!(
        p.map(|p| (p.node, p.route.why)),
        Ok((MASTER, Why::ReadSplitOff))
    );
    let master_reads = Settings {
        consistency: Consistency::Master,
        ..settings()
    };
    let p = place_with(
        Request::Statement(&stmt),
        SessionFacts::default(),
        &topo,
        master_reads,
        1,
    );
    assert_eq!(p.map(|p| p.node), Ok(MASTER));
    let lagging = cluster(120, "0-1-100");
    let p = place_with(
        Request::FieldList,
        SessionFacts::default(),
        &lagging,
        settings(),
        1,
    );
    assert_eq!(
        p.map(|p| p.node),
        Ok(MASTER),
        "120 s behind is past max_lag"
    );
}

#[test]
fn a_transaction_or_pins_on_a_replaced_master_neither_move_nor_finish_there() {
    let stmt = classify(b"UPDATE t SET a = 1");
    let mut moved = cluster(0, "0-1-100");
    moved.master = Some(REPLICA);
    let home_was_cn1 = SessionFacts {
        home: Some(MASTER),
        ..SessionFacts::default()
    };
    let in_tx = SessionFacts {
        in_transaction: true,
        open_transaction: true,
        ..home_was_cn1
    };
    // Its COMMIT must not reach the old master: cut off before it was
    // fenced, it would acknowledge a commit the new master never gets.
    let p = place_with(Request::Statement(&stmt), in_tx, &moved, settings(), 0);
    assert_eq!(p, Err(PlaceError::MasterChanged));
    let commit = classify(b"COMMIT");
    let p = place_with(Request::Statement(&commit), in_tx, &moved, settings(), 0);
    assert_eq!(p, Err(PlaceError::MasterChanged));
    let pinned = SessionFacts {
        pinned: true,
        ..home_was_cn1
    };
    let p = place_with(Request::Statement(&stmt), pinned, &moved, settings(), 0);
    assert_eq!(p, Err(PlaceError::MasterChanged));
    // Autocommit off, but no transaction started yet: it follows the new master.
    let autocommit_off = SessionFacts {
        in_transaction: true,
        ..home_was_cn1
    };
    let p = place_with(
        Request::Statement(&stmt),
        autocommit_off,
        &moved,
        settings(),
        0,
    );
    assert_eq!(p.map(|p| (p.node, p.home)), Ok((REPLICA, Some(REPLICA))));
    // Nothing ties the session to cn1: it follows the new master.
    let p = place_with(
        Request::Statement(&stmt),
        home_was_cn1,
        &moved,
        settings(),
        0,
    );
    assert_eq!(p.map(|p| (p.node, p.home)), Ok((REPLICA, Some(REPLICA))));
}

#[test]
fn without_a_master_writes_wait_and_reads_go_to_the_survivor() {
    let write = classify(b"INSERT INTO t VALUES (1)");
    let read = classify(b"SELECT 1");
    let mut headless = cluster(0, "0-1-100");
    headless.master = None;
    headless.nodes[MASTER].state = NodeState::Down;
    let idle = SessionFacts::default();
    let p = place_with(Request::Statement(&write), idle, &headless, settings(), 0);
    assert_eq!(p, Err(PlaceError::NoMaster));
    for random in [DRAW_MASTER, DRAW_REPLICA] {
        let p = place_with(
            Request::Statement(&read),
            idle,
            &headless,
            settings(),
            random,
        );
        assert_eq!(p.map(|p| (p.node, p.fallback)), Ok((REPLICA, None)));
    }
    // The master is named but down (not failed over yet): the replica serves
    // reads even though its replication from the dead master has stopped.
    let mut dying = cluster(0, "0-1-100");
    dying.nodes[MASTER].state = NodeState::Down;
    if let Some(r) = dying.nodes[REPLICA].replication.as_mut() {
        r.io_thread = IoThread::Connecting;
    }
    let p = place_with(
        Request::Statement(&read),
        idle,
        &dying,
        settings(),
        DRAW_MASTER,
    );
    assert_eq!(p.map(|p| p.node), Ok(REPLICA));
    // A session whose last write the survivor lacks has nowhere to read.
    let mine: Gtid = "0-1-120".parse().expect("gtid");
    let wrote = SessionFacts {
        last_gtid: Some(&mine),
        ..idle
    };
    let p = place_with(
        Request::Statement(&read),
        wrote,
        &headless,
        settings(),
        DRAW_REPLICA,
    );
    assert_eq!(p, Err(PlaceError::NoMaster));
}

#[test]
fn global_reads_go_only_to_nodes_that_applied_every_acknowledged_commit() {
    let stmt = classify(b"SELECT * FROM cart");
    let topo = cluster(0, "0-1-100");
    let global = Settings {
        consistency: Consistency::Global,
        ..settings()
    };
    let at = |applied_all_acked: u64| {
        place(&PlaceInput {
            request: Request::Statement(&stmt),
            // Another session wrote: this one has no write of its own.
            session: SessionFacts::default(),
            topology: &topo,
            settings: global,
            random: DRAW_REPLICA,
            applied_all_acked,
        })
        .map(|p| (p.node, p.route.why))
    };
    assert_eq!(
        at(1 << MASTER),
        Ok((MASTER, Why::Read)),
        "the replica lacks one"
    );
    assert_eq!(
        at(0),
        Ok((MASTER, Why::Read)),
        "the mark vouches for nothing"
    );
    assert_eq!(at(1 << MASTER | 1 << REPLICA), Ok((REPLICA, Why::Read)));
}

#[test]
fn a_read_only_transaction_keeps_every_statement_on_its_read_node() {
    let topo = cluster(0, "0-1-100");
    let begin = classify(b"START TRANSACTION READ ONLY");
    let p = place_with(
        Request::Statement(&begin),
        SessionFacts::default(),
        &topo,
        settings(),
        DRAW_REPLICA,
    );
    assert_eq!(
        p.map(|p| (p.node, p.route.why, p.fallback)),
        Ok((REPLICA, Why::ReadOnlyTx, Some(MASTER)))
    );
    let inside = SessionFacts {
        read_only_tx: Some(REPLICA),
        home: Some(MASTER),
        ..SessionFacts::default()
    };
    for sql in ["SELECT 1", "INSERT INTO t VALUES (1)", "COMMIT"] {
        let stmt = classify(sql.as_bytes());
        let p = place_with(
            Request::Statement(&stmt),
            inside,
            &topo,
            settings(),
            DRAW_MASTER,
        );
        assert_eq!(
            p.map(|p| (p.node, p.route.why, p.fallback, p.home)),
            Ok((REPLICA, Why::ReadOnlyTx, None, Some(MASTER))),
            "{sql}"
        );
    }
}

#[test]
fn a_begin_right_after_set_transaction_read_only_opens_on_the_node_that_ran_it() {
    let topo = cluster(0, "0-1-100");
    let set = classify(b"SET TRANSACTION READ ONLY");
    let p = place_with(
        Request::Statement(&set),
        SessionFacts::default(),
        &topo,
        settings(),
        DRAW_REPLICA,
    );
    assert_eq!(
        p.map(|p| (p.node, p.route.why)),
        Ok((REPLICA, Why::ReadOnlyTx))
    );
    let waiting = SessionFacts {
        read_only_next: Some(REPLICA),
        home: Some(MASTER),
        ..SessionFacts::default()
    };
    let at = |sql: &str, draw| {
        let stmt = classify(sql.as_bytes());
        place_with(Request::Statement(&stmt), waiting, &topo, settings(), draw)
            .map(|p| (p.node, p.route.why))
    };
    // Whatever the draw: the BEGIN goes where the SET waits.
    assert_eq!(at("BEGIN", DRAW_MASTER), Ok((REPLICA, Why::ReadOnlyTx)));
    assert_eq!(
        at("START TRANSACTION", DRAW_MASTER),
        Ok((REPLICA, Why::ReadOnlyTx))
    );
    // An explicit access mode, a write or several statements: as usual.
    assert_eq!(
        at("START TRANSACTION READ WRITE", DRAW_REPLICA),
        Ok((MASTER, Why::Transaction))
    );
    assert_eq!(
        at("INSERT INTO t VALUES (1)", DRAW_REPLICA),
        Ok((MASTER, Why::Write))
    );
    assert_eq!(
        at("BEGIN; SELECT 1", DRAW_REPLICA),
        Ok((MASTER, Why::Transaction))
    );
    assert_eq!(at("SELECT 1", DRAW_MASTER), Ok((MASTER, Why::Read)));
}

#[test]
fn a_statement_about_the_previous_one_on_a_replica_is_not_placed_as_on_the_master() {
    // A command placed on the master is abandoned as soon as its node is
    // not the master: SHOW WARNINGS after a read on the replica would be
    // abandoned at once if it were placed "on the master" there.
    let stmt = classify(b"SHOW WARNINGS");
    let topo = cluster(0, "0-1-100");
    for (last, target) in [(REPLICA, Target::Read), (MASTER, Target::Master)] {
        let session = SessionFacts {
            last_node: Some(last),
            ..SessionFacts::default()
        };
        let p = place_with(
            Request::Statement(&stmt),
            session,
            &topo,
            settings(),
            DRAW_MASTER,
        )
        .expect("placed");
        assert_eq!((p.node, p.route.target), (last, target));
        assert_eq!(p.route.why, Why::SameConnection);
    }
}
