<?php
// What PrestaShop's Db classes do, through both PDO modes and mysqli:
// SET NAMES utf8mb4, INSERT + lastInsertId(), prepared SELECTs (emulated and
// native), a transaction, and a read of a utf8mb4 value.
// Usage: php shop.php HOST PORT USER PASSWORD DB
// Prints key=value lines; exits 1 with the error on stderr.

declare(strict_types=1);

[, $host, $port, $user, $password, $db] = $argv;
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

try {
    $out = [];
    foreach (['emulated' => true, 'native' => false] as $mode => $emulate) {
        $pdo = new PDO("mysql:host=$host;port=$port;dbname=$db", $user, $password, [
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_EMULATE_PREPARES => $emulate,
        ]);
        $pdo->exec('SET NAMES utf8mb4');
        $pdo->exec('CREATE TABLE IF NOT EXISTS ps_product (id_product INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) CHARACTER SET utf8mb4, price DECIMAL(20,6))');
        $ins = $pdo->prepare('INSERT INTO ps_product (name, price) VALUES (?, ?)');
        $ids = [];
        for ($i = 0; $i < 5; $i++) {
            $ins->execute(["Café ☕ $mode $i", 9.5 + $i]);
            $ids[] = (int) $pdo->lastInsertId();
        }
        $out["$mode.ids_distinct"] = count(array_unique($ids)) === 5 ? 'yes' : 'no(' . implode(',', $ids) . ')';
        $last = end($ids);
        $sel = $pdo->prepare('SELECT /* sqlproxy:master */ name, price FROM ps_product WHERE id_product = ?');
        $sel->execute([$last]);
        $row = $sel->fetch(PDO::FETCH_ASSOC);
        $out["$mode.name"] = $row['name'];
        $out["$mode.price"] = $row['price'];
        $lid = $pdo->query('SELECT LAST_INSERT_ID() AS l')->fetch(PDO::FETCH_ASSOC)['l'];
        $out["$mode.last_insert_id_matches"] = ((int) $lid === $last) ? 'yes' : "no($lid vs $last)";
        $pdo->beginTransaction();
        $pdo->exec("UPDATE ps_product SET price = price + 1 WHERE id_product = $last");
        $p = $pdo->query("SELECT price FROM ps_product WHERE id_product = $last")->fetch(PDO::FETCH_ASSOC)['price'];
        $pdo->commit();
        $out["$mode.price_in_tx"] = $p;
        try {
            $pdo->exec('INSERT INTO ps_product (id_product, name) VALUES (' . $last . ", 'dup')");
            $out["$mode.dup"] = 'no error';
        } catch (PDOException $e) {
            $out["$mode.dup"] = $e->errorInfo[0] . '/' . $e->errorInfo[1];
        }
    }
    $m = new mysqli($host, $user, $password, $db, (int) $port);
    $m->set_charset('utf8mb4');
    $m->query("INSERT INTO ps_product (name, price) VALUES ('mysqli', 1)");
    $insertId = $m->insert_id; // read before the next query resets it
    $lastId = (int) $m->query('SELECT LAST_INSERT_ID()')->fetch_row()[0];
    $out['mysqli.insert_id_ok'] = ($insertId > 0 && $lastId === $insertId) ? 'yes' : "no($insertId vs $lastId)";
    $st = $m->prepare('SELECT COUNT(*) FROM ps_product WHERE price > ?');
    $min = 0.5;
    $st->bind_param('d', $min);
    $st->execute();
    $st->bind_result($count);
    $st->fetch();
    $out['mysqli.count_at_least'] = $count >= 1 ? 'yes' : 'no';
    $st->close();
    $m->close();
} catch (Throwable $e) {
    fwrite(STDERR, get_class($e) . ' ' . $e->getCode() . ': ' . $e->getMessage() . "\n");
    exit(1);
}
foreach ($out as $k => $v) {
    echo "$k=$v\n";
}
