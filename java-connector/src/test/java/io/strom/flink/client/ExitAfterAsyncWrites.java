package io.strom.flink.client;

import java.util.List;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * A plain Java program that uses the bridge's async paths (futures completed and exported
 * batches released on the Rust client's threads), leaves its connection open (as a Flink
 * {@code TableEnvironment} keeps its catalog's), and returns from {@code main} without {@code
 * System.exit}: the JVM must then exit by itself. {@link JvmExitIT} runs it in a child JVM.
 */
public final class ExitAfterAsyncWrites {
  private ExitAfterAsyncWrites() {}

  public static void main(String[] args) throws Exception {
    // Never closed: its client's runtime threads stay alive until the process ends.
    StromConnection strom = StromConnection.connect(args[0]);
    {
      strom.createDatabase("exit", true);
      strom.createTable(TableSpec.of("exit", "t").column("id", "BIGINT").ifNotExists());
      Schema schema = new Schema(List.of(new Field("id", FieldType.nullable(new ArrowType.Int(64, true)), null)));
      try (StromWriter writer = strom.appendWriter("exit", "t");
          VectorSchemaRoot root = VectorSchemaRoot.create(schema, strom.allocator())) {
        BigIntVector id = (BigIntVector) root.getVector(0);
        for (int batch = 0; batch < 10; batch++) {
          root.allocateNew();
          for (int i = 0; i < 100; i++) {
            id.setSafe(i, batch * 100L + i);
          }
          root.setRowCount(100);
          writer.writeAsync(root).get();
        }
        writer.flush();
      }
    }
    System.out.println("main returned");
  }
}
