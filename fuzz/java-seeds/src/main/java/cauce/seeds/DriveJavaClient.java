package cauce.seeds;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Exercises the Java client's producer, consumers and admin calls once each; errors are printed, not fatal. */
public final class DriveJavaClient {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        common.put("request.timeout.ms", "10000");
        common.put("default.api.timeout.ms", "15000");
        try (Admin admin = Admin.create(common)) {
            attempt(() -> admin.createTopics(List.of(new NewTopic("seeds-java", 2, (short) 1),
                    new NewTopic("seeds-java-compact", 1, (short) 1)
                            .configs(Map.of("cleanup.policy", "compact")))).all().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.describeTopics(List.of("seeds-java")).allTopicNames().get(15, TimeUnit.SECONDS));
            ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, "seeds-java");
            attempt(() -> admin.describeConfigs(List.of(topic)).all().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.incrementalAlterConfigs(Map.of(topic, List.of(new AlterConfigOp(
                    new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET)))).all().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.createPartitions(Map.of("seeds-java", NewPartitions.increaseTo(3))).all().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.describeCluster().nodes().get(15, TimeUnit.SECONDS));
        }
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            Properties producerConfig = new Properties();
            producerConfig.putAll(common);
            producerConfig.put("compression.type", codec);
            producerConfig.put("enable.idempotence", "true");
            producerConfig.put("linger.ms", "5");
            producerConfig.put("key.serializer", StringSerializer.class.getName());
            producerConfig.put("value.serializer", StringSerializer.class.getName());
            attempt(() -> {
                try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerConfig)) {
                    for (int i = 0; i < 20; i++) {
                        ProducerRecord<String, String> record = new ProducerRecord<>("seeds-java", "key-" + i, "value-" + i);
                        record.headers().add("h", new byte[] {1, 2});
                        producer.send(record);
                        producer.send(new ProducerRecord<>("seeds-java-compact", "key-" + i, "v"));
                    }
                    producer.flush();
                }
                return null;
            });
        }
        for (String protocol : List.of("classic", "consumer")) {
            Properties consumerConfig = new Properties();
            consumerConfig.putAll(common);
            consumerConfig.put("group.id", "seeds-java-" + protocol);
            consumerConfig.put("group.protocol", protocol);
            consumerConfig.put("auto.offset.reset", "earliest");
            consumerConfig.put("key.deserializer", StringDeserializer.class.getName());
            consumerConfig.put("value.deserializer", StringDeserializer.class.getName());
            attempt(() -> {
                try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerConfig)) {
                    consumer.subscribe(List.of("seeds-java"));
                    long deadline = System.currentTimeMillis() + 8000;
                    int seen = 0;
                    while (System.currentTimeMillis() < deadline && seen < 100) {
                        ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(500));
                        seen += records.count();
                    }
                    consumer.commitSync();
                    consumer.offsetsForTimes(Map.of(new TopicPartition("seeds-java", 0), 0L));
                }
                return null;
            });
        }
        try (Admin admin = Admin.create(common)) {
            TopicPartition first = new TopicPartition("seeds-java", 0);
            attempt(() -> admin.listConsumerGroups().all().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.describeConsumerGroups(List.of("seeds-java-classic", "seeds-java-consumer")).all().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.listConsumerGroupOffsets("seeds-java-classic").partitionsToOffsetAndMetadata().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.listOffsets(Map.of(first, OffsetSpec.latest())).all().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.deleteRecords(Map.of(first, RecordsToDelete.beforeOffset(1))).all().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.deleteConsumerGroups(List.of("seeds-java-classic")).all().get(15, TimeUnit.SECONDS));
            attempt(() -> admin.deleteTopics(Set.of("seeds-java-compact")).all().get(15, TimeUnit.SECONDS));
        }
    }

    private interface Step {
        Object run() throws Exception;
    }

    private static void attempt(Step step) {
        try {
            step.run();
        } catch (Exception error) {
            System.out.println("step failed: " + error);
        }
    }
}
