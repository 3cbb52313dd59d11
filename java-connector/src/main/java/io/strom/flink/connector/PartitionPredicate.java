package io.strom.flink.connector;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.apache.flink.table.expressions.CallExpression;
import org.apache.flink.table.expressions.FieldReferenceExpression;
import org.apache.flink.table.expressions.ResolvedExpression;
import org.apache.flink.table.expressions.ValueLiteralExpression;
import org.apache.flink.table.functions.BuiltInFunctionDefinitions;
import org.apache.flink.table.functions.FunctionDefinition;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeFamily;

/**
 * A filter on partition keys that a streaming read evaluates on every partition it finds, the
 * ones present at job start and the ones created while it runs: {@code WHERE dt >= '2026-12-01'}
 * keeps reading each new day. (Flink's partition push-down only hands a source the partitions
 * that match at planning time, which suits bounded reads only.)
 *
 * <p>Built from the conjuncts the planner pushes ({@link #of}); a conjunct that is not a
 * comparison, {@code IN}, {@code AND} or {@code OR} of partition keys and literals is not
 * taken (Flink evaluates every conjunct on the rows anyway, so a partition this predicate keeps
 * wrongly costs reading, never a wrong row). Values compare as the key's type does in Flink:
 * strings by their UTF-8 bytes, integers as numbers.
 */
public final class PartitionPredicate implements Serializable {
  private static final long serialVersionUID = 1L;

  private final List<Node> conjuncts;

  private PartitionPredicate(List<Node> conjuncts) {
    this.conjuncts = conjuncts;
  }

  /**
   * The conjuncts of {@code filters} this class can evaluate on partition values, or empty
   * when none can. {@code keys} are the partition keys, {@code types} their Flink types.
   */
  public static Optional<PartitionPredicate> of(
      List<ResolvedExpression> filters, List<String> keys, List<LogicalType> types) {
    List<Node> taken = new ArrayList<>();
    for (ResolvedExpression filter : filters) {
      Node node = translate(filter, keys, types);
      if (node != null) {
        taken.add(node);
      }
    }
    return taken.isEmpty() ? Optional.empty() : Optional.of(new PartitionPredicate(taken));
  }

  /** Whether the partition with these values (in partition-key order) may hold matching rows. */
  public boolean test(List<String> values) {
    for (Node node : conjuncts) {
      if (!node.test(values)) {
        return false;
      }
    }
    return true;
  }

  /** Whether a partition named as the node names it (values joined with '$') may match. */
  public boolean testName(String partitionName) {
    return test(List.of(partitionName.split("\\$", -1)));
  }

  @Override
  public String toString() {
    return conjuncts.toString();
  }

  private interface Node extends Serializable {
    boolean test(List<String> values);
  }

  private record Compare(int key, String name, String op, String literal, boolean numeric) implements Node {
    @Override
    public boolean test(List<String> values) {
      if (key >= values.size()) {
        return true; // a malformed name: keep the partition, Flink filters its rows
      }
      int c;
      if (numeric) {
        try {
          c = Long.compare(Long.parseLong(values.get(key)), Long.parseLong(literal));
        } catch (NumberFormatException e) {
          return true;
        }
      } else {
        c = compareUtf8(values.get(key), literal);
      }
      return switch (op) {
        case "=" -> c == 0;
        case "<>" -> c != 0;
        case "<" -> c < 0;
        case "<=" -> c <= 0;
        case ">" -> c > 0;
        default -> c >= 0; // ">="
      };
    }

    @Override
    public String toString() {
      return name + " " + op + " " + literal;
    }
  }

  private record AnyOf(List<Node> nodes) implements Node {
    @Override
    public boolean test(List<String> values) {
      for (Node node : nodes) {
        if (node.test(values)) {
          return true;
        }
      }
      return false;
    }

    @Override
    public String toString() {
      return "OR" + nodes;
    }
  }

  private record AllOf(List<Node> nodes) implements Node {
    @Override
    public boolean test(List<String> values) {
      for (Node node : nodes) {
        if (!node.test(values)) {
          return false;
        }
      }
      return true;
    }

    @Override
    public String toString() {
      return "AND" + nodes;
    }
  }

  /** Flink compares strings by their UTF-8 bytes (BinaryStringData). */
  private static int compareUtf8(String a, String b) {
    byte[] x = a.getBytes(StandardCharsets.UTF_8);
    byte[] y = b.getBytes(StandardCharsets.UTF_8);
    int n = Math.min(x.length, y.length);
    for (int i = 0; i < n; i++) {
      int c = Integer.compare(x[i] & 0xff, y[i] & 0xff);
      if (c != 0) {
        return c;
      }
    }
    return Integer.compare(x.length, y.length);
  }

  /** The node of a supported expression, or null. */
  private static Node translate(ResolvedExpression expression, List<String> keys, List<LogicalType> types) {
    if (!(expression instanceof CallExpression call)) {
      return null;
    }
    FunctionDefinition function = call.getFunctionDefinition();
    List<ResolvedExpression> args = call.getResolvedChildren();
    if (function == BuiltInFunctionDefinitions.AND || function == BuiltInFunctionDefinitions.OR) {
      List<Node> nodes = new ArrayList<>();
      for (ResolvedExpression arg : args) {
        Node node = translate(arg, keys, types);
        if (node == null) {
          if (function == BuiltInFunctionDefinitions.OR) {
            return null; // one unknown branch could match anything
          }
          continue; // AND: the known branches still narrow it down
        }
        nodes.add(node);
      }
      if (nodes.isEmpty()) {
        return null;
      }
      return function == BuiltInFunctionDefinitions.OR ? new AnyOf(nodes) : new AllOf(nodes);
    }
    if (function == BuiltInFunctionDefinitions.IN && !args.isEmpty()) {
      List<Node> nodes = new ArrayList<>();
      for (ResolvedExpression value : args.subList(1, args.size())) {
        Node node = compare(args.get(0), "=", value, keys, types);
        if (node == null) {
          return null;
        }
        nodes.add(node);
      }
      return new AnyOf(nodes);
    }
    String op = operator(function);
    if (op == null || args.size() != 2) {
      return null;
    }
    Node node = compare(args.get(0), op, args.get(1), keys, types);
    return node != null ? node : compare(args.get(1), mirrored(op), args.get(0), keys, types);
  }

  private static Node compare(
      ResolvedExpression field, String op, ResolvedExpression value, List<String> keys, List<LogicalType> types) {
    if (!(field instanceof FieldReferenceExpression reference) || !(value instanceof ValueLiteralExpression literal)) {
      return null;
    }
    int key = keys.indexOf(reference.getName());
    if (key < 0 || literal.isNull()) {
      return null;
    }
    LogicalType type = types.get(key);
    if (type.is(LogicalTypeFamily.CHARACTER_STRING)) {
      return literal.getValueAs(String.class).map(v -> (Node) new Compare(key, reference.getName(), op, v, false)).orElse(null);
    }
    if (type.is(LogicalTypeFamily.INTEGER_NUMERIC)) {
      for (Class<? extends Number> as : List.of(Long.class, Integer.class, Short.class, Byte.class)) {
        Optional<? extends Number> number = literal.getValueAs(as);
        if (number.isPresent()) {
          return new Compare(key, reference.getName(), op, Long.toString(number.get().longValue()), true);
        }
      }
    }
    return null;
  }

  private static String operator(FunctionDefinition function) {
    if (function == BuiltInFunctionDefinitions.EQUALS) {
      return "=";
    } else if (function == BuiltInFunctionDefinitions.NOT_EQUALS) {
      return "<>";
    } else if (function == BuiltInFunctionDefinitions.LESS_THAN) {
      return "<";
    } else if (function == BuiltInFunctionDefinitions.LESS_THAN_OR_EQUAL) {
      return "<=";
    } else if (function == BuiltInFunctionDefinitions.GREATER_THAN) {
      return ">";
    } else if (function == BuiltInFunctionDefinitions.GREATER_THAN_OR_EQUAL) {
      return ">=";
    }
    return null;
  }

  /** The operator with its operands swapped ({@code 5 < k} is {@code k > 5}). */
  private static String mirrored(String op) {
    return switch (op) {
      case "<" -> ">";
      case "<=" -> ">=";
      case ">" -> "<";
      case ">=" -> "<=";
      default -> op;
    };
  }
}
