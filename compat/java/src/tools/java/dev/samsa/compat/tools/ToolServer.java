package dev.samsa.compat.tools;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.kafka.common.utils.internals.Exit;

/**
 * Runs Kafka's command-line tools one after another in one JVM, as Kafka's own tests run
 * them in-process: a tool started as its own JVM spends about a second of CPU loading and
 * compiling classes before it does anything, and the compat suite runs a few hundred of them.
 *
 * <p>Requests come on stdin and answers go to the original stdout, length-prefixed:
 * a request is the main class, the arguments and the standard input (or none); an answer is
 * the exit code, what the tool wrote to System.out and what it wrote to System.err. One tool
 * runs at a time; the Python side starts a separate JVM when this one is busy.
 *
 * <p>What a JVM's exit would do is done here: the first {@code Exit.exit} ends the run with
 * its code and nothing the tool prints after it counts (in a real JVM nothing after it runs);
 * the shutdown hooks the tool added run at the end of its run, as they would at exit.
 */
public final class ToolServer {
    /** Thrown by the exit procedure to unwind the tool's thread. */
    private static final class ToolExit extends Error {
        ToolExit() {
            super(null, null, false, false);
        }
    }

    /** Where System.out or System.err goes during a run: the run's buffer, or nowhere. */
    private static final class Sink extends OutputStream {
        volatile ByteArrayOutputStream target;

        @Override
        public synchronized void write(int b) {
            ByteArrayOutputStream t = target;
            if (t != null) t.write(b);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            ByteArrayOutputStream t = target;
            if (t != null) t.write(b, off, len);
        }
    }

    private static final Sink OUT = new Sink();
    private static final Sink ERR = new Sink();
    private static volatile Integer exitCode;
    private static final List<Runnable> hooks = new ArrayList<>();

    public static void main(String[] argv) throws IOException {
        DataInputStream requests = new DataInputStream(new FileInputStream(FileDescriptor.in));
        DataOutputStream answers = new DataOutputStream(new FileOutputStream(FileDescriptor.out));
        // Installed before any tool runs, so loggers that keep the stream they found write
        // through these too.
        System.setOut(new PrintStream(OUT, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(ERR, true, StandardCharsets.UTF_8));
        Exit.setExitProcedure(ToolServer::exit);
        Exit.setHaltProcedure(ToolServer::exit);
        Exit.setShutdownHookAdder((name, hook) -> {
            synchronized (hooks) {
                hooks.add(hook);
            }
        });
        while (true) {
            String mainClass;
            try {
                mainClass = readString(requests);
            } catch (EOFException e) {
                return;
            }
            int argc = requests.readInt();
            String[] args = new String[argc];
            for (int i = 0; i < argc; i++) args[i] = readString(requests);
            int inputLength = requests.readInt();
            byte[] input = new byte[Math.max(inputLength, 0)];
            requests.readFully(input);

            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            int code = run(mainClass, args, input, out, err);
            answers.writeInt(code);
            writeBytes(answers, out.toByteArray());
            writeBytes(answers, err.toByteArray());
            answers.flush();
        }
    }

    private static int run(String mainClass, String[] args, byte[] input,
                           ByteArrayOutputStream out, ByteArrayOutputStream err) {
        exitCode = null;
        synchronized (hooks) {
            hooks.clear();
        }
        InputStream stdin = System.in;
        System.setIn(new ByteArrayInputStream(input));
        OUT.target = out;
        ERR.target = err;
        int code = 0;
        try {
            Method main = Class.forName(mainClass).getMethod("main", String[].class);
            main.invoke(null, (Object) args);
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            if (!(cause instanceof ToolExit) && exitCode == null) {
                // What the JVM prints for an uncaught exception in main, and its exit code.
                System.err.print("Exception in thread \"main\" ");
                cause.printStackTrace();
                code = 1;
            }
        } catch (ReflectiveOperationException e) {
            e.printStackTrace();
            code = 1;
        }
        if (exitCode != null) code = exitCode;
        // The hooks print too (a console consumer's count, say): as at a real exit.
        OUT.target = out;
        ERR.target = err;
        List<Runnable> toRun;
        synchronized (hooks) {
            toRun = new ArrayList<>(hooks);
            hooks.clear();
        }
        for (Runnable hook : toRun) {
            try {
                hook.run();
            } catch (Throwable t) {
                t.printStackTrace();
            }
        }
        OUT.target = null;
        ERR.target = null;
        System.setIn(stdin);
        return code;
    }

    private static void exit(int code, String message) {
        if (exitCode == null) {
            exitCode = code;
            // Nothing after the first exit runs in a real JVM, so nothing after it is output.
            OUT.target = null;
            ERR.target = null;
        }
        throw new ToolExit();
    }

    private static String readString(DataInputStream in) throws IOException {
        byte[] bytes = new byte[in.readInt()];
        in.readFully(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    private static void writeBytes(DataOutputStream out, byte[] bytes) throws IOException {
        out.writeInt(bytes.length);
        out.write(bytes);
    }
}
