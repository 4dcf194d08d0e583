// Checks Strimzi custom resources against Strimzi's own Java model (io.strimzi:api): each
// object must deserialize into its kind's class (field types, enums such as ACL operations,
// the authentication and storage types) and leave no field the model does not know (Strimzi's
// classes keep unknown fields in getAdditionalProperties(); the API server would drop them),
// and no list value its enums do not know (read as null).
// Reads a JSON array of objects on stdin; prints one line per object: "ok <kind> <name>" or
// "problem <kind> <name>: <what>". Run: java -cp <classpath> StrimziCheck.java
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

public class StrimziCheck {
    static final Map<String, String> CLASSES = Map.of(
            "Kafka", "io.strimzi.api.kafka.model.kafka.Kafka",
            "KafkaNodePool", "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
            "KafkaTopic", "io.strimzi.api.kafka.model.topic.KafkaTopic",
            "KafkaUser", "io.strimzi.api.kafka.model.user.KafkaUser");

    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper()
                .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, true);
        JsonNode items = mapper.readTree(System.in);
        for (JsonNode item : items) {
            String kind = item.path("kind").asText();
            String name = item.path("metadata").path("name").asText();
            String className = CLASSES.get(kind);
            if (className == null) {
                System.out.println("problem " + kind + " " + name + ": not a Strimzi kind this checks");
                continue;
            }
            try {
                Object model = mapper.treeToValue(item, Class.forName(className));
                List<String> unknown = new ArrayList<>();
                walk(model, kind, unknown, new IdentityHashMap<>());
                System.out.println(unknown.isEmpty()
                        ? "ok " + kind + " " + name
                        : "problem " + kind + " " + name + ": unknown " + unknown);
            } catch (Exception error) {
                String message = String.valueOf(error.getMessage()).split("\n")[0];
                System.out.println("problem " + kind + " " + name + ": " + message);
            }
        }
    }

    static void walk(Object value, String path, List<String> unknown, Map<Object, Boolean> seen)
            throws Exception {
        if (value == null || seen.containsKey(value)) {
            return;
        }
        if (value instanceof Collection<?> collection) {
            int i = 0;
            for (Object element : collection) {
                if (element == null) {  // Strimzi's enums read an unknown value as null
                    unknown.add(path + "[" + i + "] (not a value the model knows)");
                }
                walk(element, path + "[" + i++ + "]", unknown, seen);
            }
            return;
        }
        if (value instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                walk(entry.getValue(), path + "." + entry.getKey(), unknown, seen);
            }
            return;
        }
        if (!value.getClass().getName().startsWith("io.strimzi.")) {
            return;  // metadata (fabric8), strings, numbers, enums
        }
        seen.put(value, true);
        for (Method method : value.getClass().getMethods()) {
            if (method.getParameterCount() != 0 || Modifier.isStatic(method.getModifiers())
                    || method.getDeclaringClass() == Object.class) {
                continue;
            }
            String getter = method.getName();
            if (getter.equals("getAdditionalProperties")) {
                Object extra = method.invoke(value);
                if (extra instanceof Map<?, ?> fields && !fields.isEmpty()) {
                    for (Object field : fields.keySet()) {
                        unknown.add(path + "." + field);
                    }
                }
            } else if (getter.startsWith("get") && !getter.equals("getClass")) {
                String field = Character.toLowerCase(getter.charAt(3)) + getter.substring(4);
                walk(method.invoke(value), path + "." + field, unknown, seen);
            }
        }
    }
}
