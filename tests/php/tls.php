<?php
// PDO and mysqli over TLS, verifying the server's certificate against a CA,
// as a shop whose database is on another machine would connect.
// Usage: php tls.php HOST PORT USER PASSWORD CA [CLIENT_CERT CLIENT_KEY]
// Prints `pdo.one=1` and `mysqli.one=1` (and each driver's cipher as PHP
// sees it); exits 1 with the error on stderr. Used by tests/tls.rs.

declare(strict_types=1);

if ($argc < 6) {
    fwrite(STDERR, "usage: php tls.php HOST PORT USER PASSWORD CA [CERT KEY]\n");
    exit(2);
}
[, $host, $port, $user, $password, $ca] = $argv;
$cert = $argv[6] ?? null;
$key = $argv[7] ?? null;

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

try {
    $options = [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::MYSQL_ATTR_SSL_CA => $ca,
        PDO::MYSQL_ATTR_SSL_VERIFY_SERVER_CERT => true,
    ];
    if ($cert !== null) {
        $options[PDO::MYSQL_ATTR_SSL_CERT] = $cert;
        $options[PDO::MYSQL_ATTR_SSL_KEY] = $key;
    }
    $pdo = new PDO("mysql:host=$host;port=$port;charset=utf8mb4", $user, $password, $options);
    $pdo_one = $pdo->query('SELECT 1')->fetchColumn();

    $mysqli = mysqli_init();
    $mysqli->options(MYSQLI_OPT_SSL_VERIFY_SERVER_CERT, true);
    $mysqli->ssl_set($key, $cert, $ca, null, null);
    $mysqli->real_connect($host, $user, $password, '', (int) $port, null, MYSQLI_CLIENT_SSL);
    $mysqli_one = $mysqli->query('SELECT 1')->fetch_row()[0];
    $mysqli->close();
} catch (Throwable $e) {
    fwrite(STDERR, get_class($e) . ' ' . $e->getCode() . ': ' . $e->getMessage() . "\n");
    exit(1);
}

echo "pdo.one=$pdo_one\n";
echo "mysqli.one=$mysqli_one\n";
