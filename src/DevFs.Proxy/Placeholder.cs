namespace DevFs.Proxy; internal static class Placeholder{}
