<?php
// Which server answers a PHP client, through both drivers PrestaShop uses.
// Usage: php whoami.php HOST PORT USER PASSWORD [DB]
// Prints `driver.key=value` lines (pdo.server_id=1, mysqli.db=...), which the
// Rust side reads with common::php::key_values; exits 1 with the error on stderr.
// Used by tests/harness.rs (directly against a node) and by later proxy tests.

declare(strict_types=1);

if ($argc < 5) {
    fwrite(STDERR, "usage: php whoami.php HOST PORT USER PASSWORD [DB]\n");
    exit(2);
}
[, $host, $port, $user, $password] = $argv;
$db = $argv[5] ?? null;

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$query = 'SELECT @@server_id AS server_id, DATABASE() AS db, VERSION() AS version';

try {
    $dsn = "mysql:host=$host;port=$port;charset=utf8mb4" . ($db === null ? '' : ";dbname=$db");
    $pdo = new PDO($dsn, $user, $password, [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        // Real server-side prepares, as the binary protocol tests need.
        PDO::ATTR_EMULATE_PREPARES => false,
    ]);
    $stmt = $pdo->prepare($query);
    $stmt->execute();
    $viaPdo = $stmt->fetch(PDO::FETCH_ASSOC);

    $mysqli = new mysqli($host, $user, $password, $db ?? '', (int) $port);
    $mysqli->set_charset('utf8mb4');
    $viaMysqli = $mysqli->query($query)->fetch_assoc();
    $mysqli->close();
} catch (Throwable $e) {
    fwrite(STDERR, get_class($e) . ' ' . $e->getCode() . ': ' . $e->getMessage() . "\n");
    exit(1);
}

foreach (['pdo' => $viaPdo, 'mysqli' => $viaMysqli] as $driver => $row) {
    foreach ($row as $key => $value) {
        echo "$driver.$key=", $value ?? 'NULL', "\n";
    }
}
