<?php
// Server-side cursors and long data through mysqlnd: a read-only server-side cursor fetched row
// by row, and a 40 MiB BLOB sent with COM_STMT_SEND_LONG_DATA chunks.
// Usage: php longdata.php HOST PORT USER PASSWORD DB
declare(strict_types=1);
[, $host, $port, $user, $password, $db] = $argv;
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
try {
    $m = new mysqli($host, $user, $password, $db, (int) $port);
    $m->query('CREATE TABLE IF NOT EXISTS files (id INT PRIMARY KEY, data LONGBLOB)');
    $m->query('CREATE TABLE IF NOT EXISTS seqs (id INT PRIMARY KEY)');
    $m->query('INSERT INTO seqs SELECT seq FROM seq_1_to_250');
    // Cursor: mysqlnd sends COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY, then COM_STMT_FETCH.
    $st = $m->prepare('SELECT id FROM seqs WHERE id > ? ORDER BY id');
    $st->attr_set(MYSQLI_STMT_ATTR_CURSOR_TYPE, MYSQLI_CURSOR_TYPE_READ_ONLY);
    $from = 100;
    $st->bind_param('i', $from);
    $st->execute();
    $st->bind_result($id);
    $n = 0; $sum = 0;
    while ($st->fetch()) { $n++; $sum += $id; }
    $st->close();
    echo "cursor.rows=$n\ncursor.sum=$sum\n";
    // Long data: 40 MiB in 1 MiB chunks.
    $chunk = str_repeat(implode('', array_map('chr', range(0, 255))), 4096);
    $st = $m->prepare('INSERT INTO files VALUES (?, ?)');
    $fid = 1; $null = null;
    $st->bind_param('ib', $fid, $null);
    for ($i = 0; $i < 40; $i++) { $st->send_long_data(1, $chunk); }
    $st->execute();
    $st->close();
    $r = $m->query('SELECT /* sqlproxy:master */ LENGTH(data), MD5(data) FROM files WHERE id = 1')->fetch_row();
    echo "long.length=$r[0]\nlong.md5_ok=", ($r[1] === md5(str_repeat($chunk, 40)) ? 'yes' : 'no'), "\n";
    // The same 40 MiB row read back in one result (a >16 MiB packet from the node).
    $back = $m->query('SELECT /* sqlproxy:master */ data FROM files WHERE id = 1')->fetch_row()[0];
    echo "read.md5_ok=", (md5($back) === md5(str_repeat($chunk, 40)) ? 'yes' : 'no'), "\n";
    $m->close();
} catch (Throwable $e) {
    fwrite(STDERR, get_class($e) . ' ' . $e->getCode() . ': ' . $e->getMessage() . "\n");
    exit(1);
}
