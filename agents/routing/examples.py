"""Training sentences for the "no tool" side of the routing classifier.

The tools' own `examples` (in each tool module) teach the classifier what
each registered tool is for; this module teaches it what is *not* a request
for any registered tool. All sentences are written for this purpose and kept
apart from the dev/held-out routing sets.

The "no tool" side is stored in groups, and each group is its own class while
training (`no_tool_classes`); at prediction time every such class means
"no tool". Small, coherent classes give a linear model cleaner boundaries than
one heterogeneous "other" blob: a request to quantize a model sits close to
`estimate_memory` in embedding space, and only a class of quantization
requests pulls it away reliably.

Groups keyed by a planned tool name (`PLANNED_TOOL_REQUESTS`, and
`CONCEPT_QUESTIONS` under "search_course") are dropped automatically once a
tool of that name is registered: from then on that tool's own examples own
those requests.
"""

from __future__ import annotations

from collections.abc import Iterable

# Greetings, thanks, goodbyes, small talk and questions about the tutor itself.
SMALL_TALK: tuple[str, ...] = (
    "hi",
    "Hello there",
    "Hey, how are you doing today?",
    "Good morning!",
    "Good evening, tutor",
    "Thank you so much!",
    "Thanks, that was really helpful",
    "Great, thanks for the explanation",
    "Cool, got it",
    "OK",
    "Bye!",
    "See you tomorrow",
    "Goodbye and have a nice day",
    "I'm done for today",
    "Tell me a joke",
    "How's the weather where you are?",
    "I'm feeling a bit tired today",
    "Who are you?",
    "What can you do?",
    "What tools do you have?",
    "How do I use this tutor?",
    "Can you answer in English please?",
    "Are you ChatGPT?",
    "What model are you running on?",
    "Let's start the course",
    # introductions mention topics without asking to run anything
    "My name is Sam and I'm learning about fine-tuning",
    "I'm a student interested in quantization and model merging",
    "I work as a data scientist and I'm new to LLMs",
    "Hi, I'm Lena, I research GGUF and llama.cpp",
    "我叫小明，正在学习模型量化",
    "我是研究生，研究方向是大模型微调",
    "Nice work",
    "您好",
    "你好呀",
    "嗨，在吗？",
    "早上好",
    "晚上好",
    "谢谢你！",
    "非常感谢，讲得很清楚",
    "好的，明白了",
    "再见",
    "拜拜，明天见",
    "今天就学到这里吧",
    "给我讲个笑话",
    "今天天气怎么样？",
    "你是谁？",
    "你能做什么？",
    "你有哪些工具？",
    "这个助教怎么用？",
    "请用中文回答",
    "你是用什么模型实现的？",
    "我们开始上课吧",
)

# Conceptual questions about LLM topics: answered from knowledge, no tool.
# They move to the course-search tool's examples when `search_course` is
# registered (`no_tool_classes` then drops this group). Several deliberately
# mention memory, quantization or decoding, so that a question *about* a
# topic is not mistaken for a request to *run* the matching tool.
CONCEPT_QUESTIONS: tuple[str, ...] = (
    "What is a transformer?",
    "Explain self-attention in simple terms",
    "What are positional embeddings for?",
    "How does tokenization work in LLMs?",
    "What is the difference between pre-training and fine-tuning?",
    "Why does LoRA train so few parameters?",
    "What is QLoRA?",
    "What is the KV cache?",
    "Why do quantized models lose accuracy?",
    "What is the difference between GPTQ and AWQ?",
    "What is temperature in sampling?",
    "How does top-p sampling work?",
    "What is beam search?",
    "Why does greedy decoding repeat itself?",
    "What is retrieval-augmented generation?",
    "How do vector databases work?",
    "What is direct preference optimization?",
    "Explain reinforcement learning from human feedback",
    "What is model merging?",
    "What is mixture of experts?",
    "What does perplexity measure?",
    "What is flash attention?",
    "How do LLM agents use tools?",
    "What is a jailbreak attack?",
    "What is chain-of-thought prompting?",
    "Where in the course is LoRA covered?",
    "Summarize the course section on evaluation",
    "Can you recommend resources for learning about RAG?",
    "Explain gradient checkpointing",
    "Why do LLMs hallucinate?",
    "什么是注意力机制？",
    "解释一下 Transformer 的结构",
    "LoRA 的原理是什么？",
    "什么是 KV 缓存？",
    "量化为什么会降低精度？",
    "GPTQ 和 AWQ 有什么不同？",
    "温度参数对生成有什么影响？",
    "束搜索是怎么工作的？",
    "什么是检索增强生成？",
    "解释一下 DPO 算法",
    "什么是混合专家模型？",
    "困惑度是什么意思？",
    "大模型为什么会产生幻觉？",
    "什么是思维链提示？",
    "课程里哪里讲到了模型合并？",
    "预训练和指令微调有什么区别？",
    "介绍一下 RAG 的基本流程",
    "什么是分词器？",
)

# The "no tool" sentences proper (chat + concepts), in English and Chinese.
NO_TOOL_EXAMPLES: tuple[str, ...] = SMALL_TALK + CONCEPT_QUESTIONS

# Requests for tools that are planned (fixed names) but not registered yet.
# Until a tool is registered, its requests must route to "no tool" rather
# than to the nearest registered tool.
PLANNED_TOOL_REQUESTS: dict[str, tuple[str, ...]] = {
    "query_course_db": (
        "How many modules does the course have?",
        "Count the notebooks in the fine-tuning section",
        "Which resources cover quantization?",
        "Show all notebooks that use Unsloth",
        "List every lesson in the LLM Engineer track",
        "How many quizzes have I passed so far?",
        "What is my progress in the course?",
        "Which articles were written by Maxime Labonne?",
        "Give me the links in the deployment chapter",
        "课程一共有多少个章节？",
        "列出所有关于 RAG 的资源",
        "哪些 notebook 用到了 TRL？",
        "我的学习进度是多少？",
        "统计一下量化部分有多少篇文章",
    ),
    "finetune_model": (
        "Fine-tune SmolLM2 on my dataset",
        "Start a LoRA training run with rank 16",
        "Train the model with QLoRA on data/train.jsonl for 3 epochs",
        "Run supervised fine-tuning on the alpaca data",
        "Do DPO training with my preference dataset",
        "Continue training my adapter with a lower learning rate",
        "Run ORPO on the chat pairs",
        "Launch SFT with batch size 8",
        "Fine-tune a 7B model on my instructions",
        "Train Llama 3 8B with LoRA on the support tickets",
        "微调这个模型",
        "用我的数据集做一次 SFT",
        "开始 QLoRA 训练，rank 设为 8",
        "用偏好数据做 DPO 对齐",
        "把学习率改成 1e-4 再训练一次",
        "用 QLoRA 把 Qwen 14B 微调一下",
    ),
    "quantize_model": (
        "Quantize the model to 4-bit",
        "Make a GGUF Q5_K_M version of my model",
        "Export my fine-tuned model to GGUF",
        "Run GPTQ quantization on my checkpoint",
        "Apply AWQ to the merged model",
        "Load the model in 8-bit with bitsandbytes",
        "Compress my model with int4 weights",
        "Quantize Mistral 7B to 4-bit GGUF",
        "把模型量化成 4 位",
        "导出 GGUF 格式",
        "用 GPTQ 量化我的模型",
        "把模型转成 int8",
        "对微调后的模型做 AWQ 量化",
        "把 8B 模型量化成 Q4_K_M",
    ),
    "merge_models": (
        "Merge my two fine-tuned models",
        "Combine these checkpoints with linear merging",
        "Run a DARE merge of the adapters",
        "Use mergekit to blend model X and model Y",
        "Merge the LoRA adapter into the base model",
        "Create a frankenmerge with passthrough",
        "合并这两个模型",
        "用 SLERP 融合两个检查点",
        "把 LoRA 适配器合并回基础模型",
        "用 mergekit 做 TIES 合并",
    ),
    "evaluate_model": (
        "Evaluate my fine-tuned model",
        "Run a benchmark on the new checkpoint",
        "Measure perplexity on the validation set",
        "Score my model on MMLU",
        "Compare my model before and after fine-tuning on the eval set",
        "How well does the quantized model do on the test data?",
        "评估一下我的模型",
        "在验证集上测一下困惑度",
        "跑一下 MMLU 基准测试",
        "对比量化前后模型的准确率",
    ),
    "quiz": (
        "Give me a quiz about attention",
        "Test my knowledge of RAG",
        "Ask me three questions about quantization",
        "I want a multiple-choice question on LoRA",
        "Can you check whether I understood tokenization?",
        "Make a short test on decoding strategies",
        "考考我关于 Transformer 的知识",
        "给我出几道 RAG 的题",
        "来一个关于微调的小测验",
        "测试一下我对 LoRA 的理解",
    ),
    "job_status": (
        "Is my training job finished?",
        "Show the progress of the running job",
        "Cancel the current fine-tuning run",
        "What jobs are running right now?",
        "Show me the logs of the last job",
        "Kill the quantization job",
        "我的训练任务完成了吗？",
        "查看当前任务的进度",
        "取消正在进行的任务",
        "显示最近一个任务的日志",
    ),
}

# The tool that will own CONCEPT_QUESTIONS once registered.
CONCEPTS_TOOL = "search_course"

NO_TOOL_PREFIX = "-"  # class labels starting with this mean "no tool"; tool names never do


def no_tool_classes(registered: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Training classes that all mean "no tool", given the registered tool names."""
    registered = set(registered)
    classes: dict[str, tuple[str, ...]] = {f"{NO_TOOL_PREFIX}small_talk": SMALL_TALK}
    if CONCEPTS_TOOL not in registered:
        classes[f"{NO_TOOL_PREFIX}concepts"] = CONCEPT_QUESTIONS
    for name, examples in PLANNED_TOOL_REQUESTS.items():
        if name not in registered:
            classes[f"{NO_TOOL_PREFIX}{name}"] = examples
    return classes
