package io.strom.flink.connector;

import java.io.Serializable;

/** A table on a node: what a sink or source needs to open its own connection on a worker. */
public final class StromTableAddress implements Serializable {
  private static final long serialVersionUID = 1L;

  private final String endpoint;
  private final String database;
  private final String table;

  public StromTableAddress(String endpoint, String database, String table) {
    this.endpoint = endpoint;
    this.database = database;
    this.table = table;
  }

  public String endpoint() {
    return endpoint;
  }

  public String database() {
    return database;
  }

  public String table() {
    return table;
  }

  @Override
  public String toString() {
    return database + "." + table + " at " + endpoint;
  }
}
