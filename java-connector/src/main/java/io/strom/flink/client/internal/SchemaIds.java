package io.strom.flink.client.internal;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Which schema a batch sent to Rust crosses with (jni-bridge/src/schemas.rs): the one sent last
 * when equal — the batch then crosses without its schema, which Rust keeps by id — else a new
 * id and the schema sent. Exporting and parsing 43 fields per batch cost more than crossing the
 * batch's buffers. Safe to share between threads: a batch names the schema it has, whatever
 * another thread sent meanwhile.
 */
public final class SchemaIds {
  /** The schema Rust keeps under its id, last sent (null before the first batch). */
  private final AtomicReference<Ref> lastSent = new AtomicReference<>();

  private final AtomicInteger nextId = new AtomicInteger();

  /** How a batch of {@code schema} crosses; call {@link Ref#sent()} once the native call returned. */
  public Ref of(Schema schema) {
    Ref known = lastSent.get();
    if (known != null && (known.schema == schema || known.schema.equals(schema))) {
      return known;
    }
    return new Ref(schema, nextId.incrementAndGet(), true);
  }

  /** A schema and the id Rust keeps it under. */
  public final class Ref {
    private final Schema schema;
    private final int id;
    private final boolean send;

    private Ref(Schema schema, int id, boolean send) {
      this.schema = schema;
      this.id = id;
      this.send = send;
    }

    public int id() {
      return id;
    }

    /** Whether the schema crosses with this batch (Rust does not know the id yet). */
    public boolean send() {
      return send;
    }

    /**
     * Once the native call returned: Rust keeps the schema now, so later batches (from any
     * thread) may refer to it by id.
     */
    public void sent() {
      if (send) {
        lastSent.set(new Ref(schema, id, false));
      }
    }
  }
}
