package io.strom.flink.client.internal;

import io.strom.flink.client.ScanBatch;
import io.strom.flink.client.ScanRequest;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromScanner;
import io.strom.flink.client.StromWriter;
import io.strom.flink.client.TableSpec;
import io.strom.flink.client.WriteAck;
import java.time.Duration;
import java.util.List;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * A round trip through every layer of the connector jar (native loading, C Data both ways,
 * the relocated Arrow classes): creates a log table, writes rows, scans them back. Its API
 * uses JDK types only, so it can be driven reflectively from another class loader (the
 * two-class-loader test) or run as {@code java -cp strom-flink-connector.jar
 * io.strom.flink.client.internal.SelfCheck grpc://host:port db table} by an operator.
 */
public final class SelfCheck {
  private SelfCheck() {}

  /** Writes {@code rows} rows to a new log table and returns the sum of what the scan read. */
  public static long roundTrip(String endpoint, String database, String table, int rows) {
    try (StromConnection connection = StromConnection.connect(endpoint)) {
      connection.createDatabase(database, true);
      connection.createTable(
          TableSpec.of(database, table).column("id", "BIGINT", false).bucketNum(1));
      Schema schema =
          new Schema(List.of(new Field("id", FieldType.notNullable(new ArrowType.Int(64, true)), null)));
      try (StromWriter writer = connection.appendWriter(database, table);
          VectorSchemaRoot root = VectorSchemaRoot.create(schema, connection.allocator())) {
        BigIntVector ids = (BigIntVector) root.getVector("id");
        for (int i = 0; i < rows; i++) {
          ids.setSafe(i, i + 1);
        }
        root.setRowCount(rows);
        WriteAck ack = writer.write(root);
        if (ack.rows() != rows) {
          throw new IllegalStateException("acknowledged " + ack.rows() + " rows, wrote " + rows);
        }
      }
      long sum = 0;
      try (StromScanner scanner = connection.scan(ScanRequest.log(database, table))) {
        while (!scanner.isFinished()) {
          try (ScanBatch batch = scanner.poll(Duration.ofSeconds(30))) {
            if (batch == null) {
              continue;
            }
            BigIntVector ids = (BigIntVector) batch.root().getVector("id");
            for (int i = 0; i < ids.getValueCount(); i++) {
              sum += ids.get(i);
            }
          }
        }
      }
      return sum;
    }
  }

  /** The library's open handles (JSON), to check that a round trip leaks none. */
  public static String openHandles() {
    return StromNative.openHandles();
  }

  public static void main(String[] args) {
    if (args.length != 3) {
      System.err.println("usage: SelfCheck grpc://host:port database table");
      System.exit(2);
    }
    long sum = roundTrip(args[0], args[1], args[2], 100);
    System.out.println("read back sum " + sum + " (expected 5050)");
    System.exit(sum == 5050 ? 0 : 1);
  }
}
