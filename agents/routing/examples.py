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

Groups keyed by a planned tool name (`PLANNED_TOOL_REQUESTS`) are "no tool"
classes until a tool of that name is registered; from then on they train
that tool's class, with its own examples (`training_classes`). The conceptual questions
(`CONCEPT_QUESTIONS`, `LAB_CONCEPT_QUESTIONS`) are "no tool" while the course
search is not registered and join its class once it is (`training_classes`).

Explain vs do: a question *about* a lab's topic ("What is NF4?",
"为什么贪心解码会重复？", "How should I evaluate a merged model?") is for the
course search; a lab tool runs only when the learner asks
for an action on a model, a dataset or a prompt ("Quantize my model with
absmax"). `LAB_CONCEPT_QUESTIONS` name the labs' own terms on purpose, so the
words alone (absmax, temperature, SLERP, 显存) do not decide the route; the
tools' examples are phrased as actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

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
    # off-topic questions: not for the course search either (and not conceptual LLM questions)
    "What's the capital of Australia?",
    "Where can I buy cheap flights to Tokyo?",
    "Who painted the Mona Lisa?",
    "What's a good recipe for pancakes?",
    "谁写了《红楼梦》？",
    "推荐一部好看的电影",
    "哪家咖啡店最好喝？",
    "明天会下雨吗？",
)

# Conceptual questions about LLM topics: answered from knowledge, no tool.
# They join the course-search tool's class when `search_course` is registered
# (`training_classes`). Several deliberately mention memory, quantization or
# decoding, so that a question *about* a topic is not mistaken for a request
# to *run* the matching tool.
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

# Explain, not do: conceptual and how-to questions that name a lab's own
# topic (quantization formats, decoding settings, fine-tuning methods,
# evaluation metrics, merge methods, memory) without asking for an action on
# a model, a dataset or a prompt. Grouped by lab, English then Chinese; the
# last group is "how should I …" advice, which is also a question for the
# course, even when it says "my model".
LAB_CONCEPT_QUESTIONS: tuple[str, ...] = (
    # quantize_model
    "Why does absmax quantization waste range when there are outliers?",
    "What's the difference between symmetric and asymmetric quantization?",
    "Why do outlier features make int8 quantization hard?",
    "What do the letters in Q4_K_M mean?",
    "How does GPTQ decide how to round each weight?",
    "What makes AWQ activation-aware?",
    "Explain how llama.cpp k-quants work",
    "Does quantization hurt a model's reasoning ability?",
    "对称量化和非对称量化有什么区别？",
    "为什么离群值会影响 int8 量化？",
    "Q4_K_M 里的 K 和 M 代表什么？",
    "GPTQ 是怎么做权重量化的？",
    "AWQ 为什么要看激活值？",
    "双重量化是什么意思？",
    "量化会不会让模型变笨？",
    "llama.cpp 的 k-quant 是怎么回事？",
    # compare_decoding
    "What makes beam search favour short, bland outputs?",
    "Why does top-p adapt to the shape of the distribution?",
    "What does a temperature below 1 do to the probabilities?",
    "Explain how temperature reshapes the softmax",
    "When is greedy decoding good enough?",
    "What is contrastive search?",
    "Why do sampling methods give different text on every run?",
    "Describe how temperature and top-p interact",
    "贪心解码为什么会陷入循环？",
    "温度小于 1 时概率分布会怎么变？",
    "核采样的原理是什么？",
    "束搜索的束宽越大越好吗？",
    "为什么采样每次生成的结果都不一样？",
    "对比搜索是什么？",
    "什么情况下用贪心解码就够了？",
    "温度和 top-p 一起用时是什么关系？",
    # finetune_model
    "What is supervised fine-tuning?",
    "How does LoRA decompose the weight update?",
    "Why does QLoRA need paged optimizers?",
    "What are chat templates and why do they matter for SFT?",
    "What is the difference between DPO and ORPO?",
    "How many epochs are usually enough for fine-tuning?",
    "Which layers does LoRA usually target?",
    "What happens if the learning rate is too high during fine-tuning?",
    "Tell me how DPO uses the chosen and rejected answers",
    "什么是监督微调？",
    "LoRA 是怎么分解权重更新的？",
    "全量微调为什么比 LoRA 更贵？",
    "聊天模板在微调中有什么作用？",
    "偏好对齐是什么意思？",
    "微调一般训练几个 epoch 合适？",
    "LoRA 通常加在哪些层上？",
    "学习率太大会对微调有什么影响？",
    "讲讲 DPO 是怎么利用好回答和坏回答的",
    # evaluate_model
    "Why is perplexity not enough to judge a chat model?",
    "What are the limits of multiple-choice benchmarks?",
    "What are BLEU and ROUGE good for?",
    "How does the Chatbot Arena rank models?",
    "Why should the eval set be kept apart from the training data?",
    "Explain what an evaluation harness does",
    "为什么只看困惑度不够？",
    "选择题基准测试有什么局限？",
    "BLEU 和 ROUGE 适合评估什么？",
    "Chatbot Arena 是怎么给模型排名的？",
    "为什么评估集不能和训练集重叠？",
    "基准测试污染是什么意思？",
    "评估框架 lm-eval 是做什么的？",
    # merge_models
    "Why is spherical interpolation used to merge weights?",
    "Why can merging models work without any training?",
    "What is a passthrough merge?",
    "What does the density parameter mean in a TIES or DARE merge?",
    "What does the t parameter in SLERP control?",
    "How do the experts in a frankenMoE get chosen?",
    "为什么用球面插值来合并权重？",
    "模型合并不需要训练为什么也有效？",
    "passthrough 合并是什么？",
    "DARE 合并的原理是什么？",
    "合并时的密度参数是什么意思？",
    "SLERP 里的 t 参数控制什么？",
    # estimate_memory
    "Why does training need so much more memory than inference?",
    "What takes up GPU memory during fine-tuning?",
    "Why does a longer context use more memory?",
    "How does 4-bit quantization shrink the memory footprint?",
    "What is mixed-precision training and how does it save memory?",
    "Explain why the KV cache speeds up generation",
    "为什么训练比推理需要更多显存？",
    "微调时显存都被什么占用了？",
    "上下文越长为什么越占显存？",
    "4 位量化是怎么节省显存的？",
    "混合精度训练是什么？",
    "激活值为什么会占用显存？",
    "解释一下 KV 缓存为什么能加速生成",
    # search_course / query_course_db neighbours: RAG concepts, not course counts
    "What is chunk overlap in a text splitter?",
    "What is reranking in retrieval?",
    "Why does hybrid search combine BM25 and embeddings?",
    "文本分块时的重叠是什么意思？",
    "检索中的重排序是什么？",
    "为什么混合检索要结合 BM25 和向量？",
    "向量检索和关键词检索有什么区别？",
    # how should I … (advice, not an action)
    "How do I get started with fine-tuning an open model?",
    "What's a good way to pick hyperparameters for LoRA?",
    "How should I evaluate a chat model after alignment?",
    "How can I tell whether quantization damaged my model?",
    "What should I check before merging two models?",
    "How do I decide between GPTQ and GGUF for deployment?",
    "Which decoding strategy should I use for creative writing?",
    "Is it better to fine-tune or to use RAG?",
    "Can you explain why merged models sometimes beat their parents?",
    "How do I quantize a model for llama.cpp?",
    "How do I merge a LoRA adapter into its base model?",
    "How do I measure whether fine-tuning actually helped?",
    "How do I pick a temperature for a chatbot?",
    "How would I benchmark a model on MMLU?",
    "How can I fine-tune a big model on a small GPU?",
    "I want to train a model on my company's documents, what should I read first?",
    "What are the first steps to align a model with human preferences?",
    "Could you explain how GPTQ works to me?",
    "Can you tell me what a reward model is?",
    "I don't really understand what NF4 is",
    "Walk me through how SLERP merging works",
    "我想入门微调，应该从哪里开始？",
    "能给我解释一下 QLoRA 吗？",
    "跟我聊聊束搜索",
    "我不太懂 TIES 合并是干什么的",
    "说说 absmax 和零点量化各自的优缺点",
    "LoRA 的超参数一般怎么设置？",
    "对齐之后的聊天模型该怎么评估？",
    "怎么判断量化有没有损坏模型？",
    "合并两个模型之前要注意什么？",
    "部署时该选 GPTQ 还是 GGUF？",
    "写小说用哪种解码策略比较好？",
    "微调数据要准备多少条才够？",
    "微调和 RAG 该怎么选？",
    "为什么合并后的模型有时比原模型更好？",
    "怎么把模型量化成 GGUF？",
    "如何把 LoRA 适配器合并回基础模型？",
    "微调有没有效果要怎么衡量？",
    "聊天机器人的温度该设多少？",
    "如何在 MMLU 上测试一个模型？",
    "显存小的显卡怎么微调大模型？",
    "我想用公司的文档训练一个模型，需要先了解什么？",
    "要让模型符合人类偏好，第一步该做什么？",
)

# The "no tool" sentences proper (chat + concepts), in English and Chinese.
NO_TOOL_EXAMPLES: tuple[str, ...] = SMALL_TALK + CONCEPT_QUESTIONS + LAB_CONCEPT_QUESTIONS

# Requests for tools that are planned (fixed names) but not registered yet.
# Until a tool is registered, its requests must route to "no tool" rather
# than to the nearest registered tool; once it is, they are its examples too.
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

# The tool that owns the conceptual questions once registered.
CONCEPTS_TOOL = "search_course"

NO_TOOL_PREFIX = "-"  # class labels starting with this mean "no tool"; tool names never do


def no_tool_classes(registered: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Training classes that all mean "no tool", given the registered tool names."""
    registered = set(registered)
    classes: dict[str, tuple[str, ...]] = {f"{NO_TOOL_PREFIX}small_talk": SMALL_TALK}
    if CONCEPTS_TOOL not in registered:
        classes[f"{NO_TOOL_PREFIX}concepts"] = CONCEPT_QUESTIONS + LAB_CONCEPT_QUESTIONS
    for name, examples in PLANNED_TOOL_REQUESTS.items():
        if name not in registered:
            classes[f"{NO_TOOL_PREFIX}{name}"] = examples
    return classes


def training_classes(tool_examples: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Every training class: label → sentences, given registered tool name → its examples.

    Tools keep their own examples; the conceptual questions are added to the
    course search's class when it is registered (otherwise they are the
    "no tool" class ``-concepts``); then the "no tool" classes.
    """
    classes = {name: tuple(examples) for name, examples in tool_examples.items() if examples}
    for name, requests in PLANNED_TOOL_REQUESTS.items():
        if name in tool_examples:  # a planned tool that is registered: its requests are its own
            known = set(classes.get(name, ()))
            classes[name] = classes.get(name, ()) + tuple(t for t in requests if t not in known)
    if CONCEPTS_TOOL in tool_examples:
        known = set(classes.get(CONCEPTS_TOOL, ()))
        extra = tuple(t for t in CONCEPT_QUESTIONS + LAB_CONCEPT_QUESTIONS if t not in known)
        classes[CONCEPTS_TOOL] = classes.get(CONCEPTS_TOOL, ()) + extra
    classes.update(no_tool_classes(tool_examples))
    return classes
