package rtcrypto.searchnode;

import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginBundle;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.common.settings.Settings;

/**
 * One local Elasticsearch node for the embedded stack, started by `rtc stack up`.
 *
 * <p>Usage: {@code java -cp <launcher>:<server jars> rtcrypto.searchnode.SearchNode <home>}. The
 * home holds {@code config/elasticsearch.yml} and {@code config/log4j2.properties} (written by
 * rtcrypto/stack/search.py) and {@code modules/<name>/} folders with a plugin descriptor and jars
 * (transport-netty4 for HTTP, rtc-root for {@code GET /}).
 *
 * <p>Why not the server's own {@code org.elasticsearch.bootstrap.Elasticsearch} main: it reads its
 * arguments from the CLI launcher over stdin and installs the entitlement agent, neither of which
 * is on Maven Central. Why not the test framework's {@code MockNode}: it needs a RandomizedRunner
 * context (`Randomness.get` fails outside a test). {@code new Node(Environment, PluginsLoader)} is
 * what both of them wrap. This is a development node: no entitlement checks, no x-pack.
 */
public final class SearchNode {
    private SearchNode() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: SearchNode <elasticsearch home>");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Settings input = Settings.builder().put("path.home", home.toString()).build();
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            input, Map.of(), home.resolve("config"), () -> "rtc-search");
        // The log pattern's %node_name converter needs the name before log4j is configured.
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(environment.settings()));
        LogConfigurator.setClusterName(environment.settings().get("cluster.name", "elasticsearch"));
        LogConfigurator.configure(environment, false);
        Logger logger = LogManager.getLogger(SearchNode.class);

        Node node;
        try {
            Set<PluginBundle> modules = PluginsLoader.loadModulesBundles(environment.modulesDir(), false);
            PluginsLoader plugins = PluginsLoader.createPluginsLoader(modules, Set.of(), Map.of(), false);
            node = new Node(environment, plugins);
        } catch (Throwable error) {
            logger.fatal("could not build the node", error);
            System.err.println("rtc-search-node: could not build the node: " + error);
            LogManager.shutdown();
            System.exit(1);
            return;
        }

        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            // SIGTERM from `rtc stack down`: flush and close shards so the next start is clean.
            try {
                node.prepareForClose();
                node.close();
                if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                    logger.warn("node did not close within 30 s");
                }
            } catch (Throwable error) {
                logger.error("error while closing the node", error);
            } finally {
                logger.info("node closed");
                LogManager.shutdown();
                closed.countDown();
            }
        }, "rtc-search-node-shutdown"));

        try {
            node.start();
        } catch (Throwable error) {
            logger.fatal("could not start the node", error);
            System.err.println("rtc-search-node: could not start the node: " + error);
            System.exit(1);
        }
        System.out.println("rtc-search-node: started, home " + home);
        closed.await();
    }
}
